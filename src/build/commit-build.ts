/**
 * CONTRACT STUB (lead, issue 7): the signatures BUILD implements and SERVE calls.
 * BUILD replaces the bodies (and may split the code into more modules), keeping
 * these exported names and shapes unless it updates /work/coord/CONTRACTS.md and
 * tells SERVE.
 *
 * A commit build depends on the commit only (never on refs or on earlier builds'
 * order): skeleton pack (commit + trees), content-defined blob groups reused by
 * key, the file table, and the CDC archive reused by raw-chunk digest. So a cold
 * and an incremental build of one commit are byte-identical.
 */
import type { ArtifactRef, ChunkRef, PackRef, RefEntry } from '../clonepack/manifest.js';
import type { ArtifactStore } from '../storage/artifact-store.js';

/** One content-defined group of blobs, packed undeltified. key = SHA-256 over its blob ids in order. */
export interface HeadGroup {
  key: string;
  pack: PackRef;
}

/** An archive chunk plus the SHA-256 of its decompressed bytes (the reuse key). */
export interface StoredChunk extends ChunkRef {
  rawDigest: string;
}

export type CommitStage = 'shallow' | 'files';

export interface CommitBuild {
  commit: string;
  stage: CommitStage;
  /** Commit + every tree of it, undeltified: head pack 0. */
  skeleton: PackRef;
  /** Blob packs in table order: head packs 1..n. */
  groups: HeadGroup[];
  table: ArtifactRef & { entries: number; rawSize: number };
  /** Whether any table entry is converted (then stage shallow already has the archive). */
  converted: boolean;
  /** The whole work-tree archive; null at stage shallow unless `converted`. */
  archive: { bytes: number; chunks: StoredChunk[] } | null;
}

/** What earlier commit builds of the same repository stored, for reuse. */
export interface ReuseIndex {
  groups: Map<string, PackRef>; // HeadGroup.key -> stored pack
  chunks: Map<string, ChunkRef>; // StoredChunk.rawDigest -> stored chunk
}

export interface CommitBuildRequest {
  mirrorDir: string;
  commit: string;
  scratchDir: string;
  store: ArtifactStore;
  reuse: ReuseIndex;
  report?: (phase: string) => void;
}

/**
 * Build the commit's artifacts, storing each in `store` before it is named.
 * Calls `onShallow` once the shallow stage is stored (the caller publishes it),
 * waits for it, then builds the archive and resolves with the `files` stage.
 */
export async function buildCommit(req: CommitBuildRequest, onShallow: (b: CommitBuild) => Promise<void>): Promise<CommitBuild> {
  void req;
  void onShallow;
  throw new Error('buildCommit: not implemented yet (BUILD)');
}

/**
 * git's tag following for a --depth 1 clone of `commit`: the tags of `refs` whose fully
 * peeled target is the commit, one of its trees or one of its blobs. Sorted names.
 */
export async function followedTags(mirrorDir: string, commit: string, refs: RefEntry[]): Promise<string[]> {
  void mirrorDir;
  void commit;
  void refs;
  throw new Error('followedTags: not implemented yet (BUILD)');
}

/** A pack of every tag object on the chains of the given annotated tags (null when none are annotated). */
export async function buildTagPack(mirrorDir: string, tags: RefEntry[], scratchDir: string, store: ArtifactStore): Promise<PackRef | null> {
  void mirrorDir;
  void tags;
  void scratchDir;
  void store;
  throw new Error('buildTagPack: not implemented yet (BUILD)');
}
