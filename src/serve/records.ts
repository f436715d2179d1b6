/**
 * The serve layer's typed view of the JSON the metadata store keeps opaque
 * (metadata may not import build or clonepack types): ref record views, commit
 * builds, the history level chain and refs snapshots.
 */
import type { CommitBuild } from '../builder/commit-build.js';
import type { HistoryLevel } from '../builder/levels.js';
import type { ManifestMode, PackRef, RefEntry } from '../clonepack/manifest.js';
import type { MetadataStore, ModeSizes, RefRecord } from '../metadata/metadata-store.js';

/** What a (ref, mode) record's manifest shows besides the commit build (RefRecord.view). */
export interface RefView {
  /** The branch the upstream's HEAD named at the build's fetch. */
  defaultBranch: string | null;
  /** Shallow and files: the ref's entry and its followed tags' entries, sorted. Full: [] (the snapshot's). */
  refs: RefEntry[];
  /** git's tag following for the commit (sorted names) and the pack of their tag objects. */
  followedTags: string[];
  tagPack: PackRef | null;
  /**
   * Digest of the followed tags' entries (name, oid, peeled: followedKey): a later sync reuses
   * followedTags and tagPack while these entries are unchanged and no other tag names the commit.
   */
  tagsKey: string;
  /** Full: the seq of the refs snapshot that names the ref at the record's commit. */
  snapshot: number | null;
  /** A version 1 build from before schema 3: its manifest is served as it is. */
  legacy?: { manifest: string; manifestSize: number; sizes: ModeSizes };
}

/** A repository's refs and history as one sync saw them. */
export interface SnapshotData {
  defaultBranch: string | null;
  refs: RefEntry[];
  /** The history levels' packs, oldest level first. */
  history: PackRef[];
}

export function viewOf(rec: RefRecord): RefView {
  return rec.view as RefView;
}

export function modeOf(rec: RefRecord): ManifestMode {
  return rec.mode;
}

export async function getCommitBuild(meta: MetadataStore, repo: string, commit: string): Promise<CommitBuild | null> {
  const row = await meta.getCommitBuild(repo, commit);
  return row ? (row.data as CommitBuild) : null;
}

export function putCommitBuild(meta: MetadataStore, repo: string, build: CommitBuild): Promise<void> {
  return meta.putCommitBuild(repo, build.commit, build.stage, build);
}

export async function recentCommitBuilds(meta: MetadataStore, repo: string, limit: number): Promise<CommitBuild[]> {
  return (await meta.recentCommitBuilds(repo, limit)) as CommitBuild[];
}

/** The level chain packed from `upstream`, with the seq of the sync that wrote it (seq 0, no levels, before the first). */
export async function getLevels(meta: MetadataStore, repo: string, upstream: string): Promise<{ seq: number; levels: HistoryLevel[] }> {
  const row = await meta.getLevels(repo, upstream);
  return row ? { seq: row.seq, levels: row.levels as HistoryLevel[] } : { seq: 0, levels: [] };
}

export async function getSnapshot(meta: MetadataStore, repo: string, seq: number): Promise<SnapshotData | null> {
  const row = await meta.getSnapshot(repo, seq);
  return row ? (row.data as SnapshotData) : null;
}

export async function latestSnapshot(meta: MetadataStore, repo: string): Promise<{ seq: number; data: SnapshotData } | null> {
  const row = await meta.latestSnapshot(repo);
  return row ? { seq: row.seq, data: row.data as SnapshotData } : null;
}
