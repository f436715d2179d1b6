/**
 * Commit builds (issue 7): the artifacts that depend on one commit only.
 *
 * A commit build depends on the commit only (never on refs or on earlier builds'
 * order): skeleton pack (commit + trees), content-defined blob groups reused by
 * key, the file table, and the CDC archive reused by raw-chunk digest. So a cold
 * and an incremental build of one commit are byte-identical.
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compress } from 'zstd-napi';
import { MAX_CHUNK_RAW, type ArtifactRef, type ChunkRef, type PackRef, type RefEntry } from '../clonepack/manifest.js';
import { storedWithSize, type ArtifactStore } from '../storage/artifact-store.js';
import { encodeTable, FLAG_CONVERTED, MODE_GITLINK, NO_PACK, type TableEntry } from '../clonepack/filetable.js';
import { objectSpans, parseIdx } from '../git/idx.js';
import { sha256Hex } from '../util/hash.js';
import { SnapError } from '../util/errors.js';
import { runGit } from './gitproc.js';
import { listTree, type TreeItem } from './tree.js';
import { checkoutConversions } from './attributes.js';
import { packObjects, tagChains, type BuiltPack } from './packs.js';
import { buildCdcArchive, chunkReuseKey, type ArchiveItem } from './archive.js';

export { chunkReuseKey, zstdLevelFromEnv };
import { putCounted } from './put-counted.js';
import { mapLimit } from '../util/limit.js';
import { log } from '../util/log.js';
import { checkZstdLevel, DEFAULT_ZSTD_LEVEL, zstdLevelFromEnv } from '../util/zstd-level.js';
import { checkCdcParams, DEFAULT_ARCHIVE_CDC, DEFAULT_GROUP_CDC, groupBlobs, type BlobInfo, type CdcParams } from './cdc.js';

/** One content-defined group of blobs, packed undeltified. key = SHA-256 over its blob ids in order. */
export interface HeadGroup {
  key: string;
  pack: PackRef;
}

/**
 * An archive chunk plus what its frame was made from: the SHA-256 of its
 * decompressed bytes, the zstd level and the build format (together the reuse
 * key, chunkReuseKey). `level` and `format` are absent in rows stored before
 * they were recorded; such chunks are never reused.
 */
export interface StoredChunk extends ChunkRef {
  rawDigest: string;
  level?: number;
  format?: number;
}

/**
 * Salt of every reuse key (blob groups and archive chunks). A reused artifact must
 * be what a cold build makes now, but pack and frame bytes also depend on the git,
 * zlib and zstd library versions. Bump this when an upgrade of those changes the
 * bytes they make (docs/ARCHITECTURE.md, Determinism): stored entries of an older
 * format are then built again instead of reused.
 */
export const BUILD_FORMAT = 1;

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
  chunks: Map<string, ChunkRef>; // chunkReuseKey(StoredChunk) -> stored chunk
}

export interface CommitBuildRequest {
  mirrorDir: string;
  commit: string;
  scratchDir: string;
  store: ArtifactStore;
  reuse: ReuseIndex;
  report?: (phase: string) => void;
  /** Chunking and compression; defaults are DEFAULT_COMMIT_BUILD_OPTIONS (tests use small sizes). */
  options?: Partial<CommitBuildOptions>;
  /** Filled in as the build goes (for logs and the bench). */
  stats?: CommitBuildStats;
}

export interface CommitBuildOptions {
  /** Archive chunks: content-defined over the table-ordered stream. */
  archive: CdcParams;
  /** Blob groups (HEAD packs 1..n), in raw blob bytes. */
  groups: CdcParams;
  /** Of the table and the archive chunks: an integer from 1 to 19 (default: $SNAPCLONE_ZSTD_LEVEL, else 6). */
  zstdLevel: number;
  /** Blob-group pack-objects run at once. */
  parallel: number;
}

export const DEFAULT_COMMIT_BUILD_OPTIONS: CommitBuildOptions = {
  archive: DEFAULT_ARCHIVE_CDC,
  groups: DEFAULT_GROUP_CDC,
  zstdLevel: DEFAULT_ZSTD_LEVEL,
  parallel: 2,
};

export interface CommitBuildStats {
  groups: number;
  groupsReused: number;
  chunks: number;
  chunksReused: number;
  /** Bytes this build put that the store did not hold before. */
  newBytes: number;
}

/**
 * Build the commit's artifacts, storing each in `store` before it is named.
 * Calls `onShallow` once the shallow stage is stored (the caller publishes it),
 * waits for it, then builds the archive and resolves with the `files` stage.
 */
export async function buildCommit(req: CommitBuildRequest, onShallow: (b: CommitBuild) => Promise<void>): Promise<CommitBuild> {
  // The level is read per build, so a changed environment takes effect without a restart.
  const opt: CommitBuildOptions = { ...DEFAULT_COMMIT_BUILD_OPTIONS, zstdLevel: zstdLevelFromEnv(process.env), ...req.options };
  checkZstdLevel(opt.zstdLevel, 'zstd level');
  // Checked before anything is built or published: the client holds 12 archive chunks of at most MAX_CHUNK_RAW.
  checkCdcParams(opt.archive, MAX_CHUNK_RAW);
  checkCdcParams(opt.groups);
  const stats: CommitBuildStats = req.stats ?? { groups: 0, groupsReused: 0, chunks: 0, chunksReused: 0, newBytes: 0 };
  const report = req.report ?? (() => {});
  const repo = req.mirrorDir;
  const commit = req.commit;
  if (!/^[0-9a-f]{40}$/.test(commit)) throw new SnapError('build-failed', `not a commit id: ${JSON.stringify(commit)}`);
  const type = (await runGit(['cat-file', '-t', commit], { cwd: repo })).toString().trim();
  if (type !== 'commit') throw new SnapError('build-failed', `${commit} is a ${type}, not a commit`);
  mkdirSync(req.scratchDir, { recursive: true });
  const packDir = join(req.scratchDir, 'packs');
  const chunkDir = join(req.scratchDir, 'chunks');
  mkdirSync(packDir, { recursive: true });
  mkdirSync(chunkDir, { recursive: true });
  const put = (path: string) => putCounted(req.store, path, (n) => (stats.newBytes += n));

  report('reading tree');
  const { trees, leaves } = await listTree(repo, commit);
  const rootTree = (await runGit(['rev-parse', `${commit}^{tree}`], { cwd: repo })).toString().trim();
  rememberClosure(repo, commit, rootTree, trees, leaves);
  report('checking attributes');
  const converted = await checkoutConversions(repo, commit, leaves, join(req.scratchDir, 'attr'));

  report('packing');
  // Head pack 0: the commit and its trees. Blobs: content-defined groups in table order.
  const skeletonBuilt = await packOne(repo, [commit, rootTree, ...trees.filter((t) => t !== rootTree)], join(packDir, 'skeleton'));
  const skeleton = await storePack(skeletonBuilt, put);
  const groupLists = groupBlobs(uniqueBlobs(leaves), opt.groups);
  stats.groups = groupLists.length;
  const spans = new Map<string, { pack: number; offset: number; length: number }>();
  const groups = await mapLimit(groupLists, opt.parallel, async (blobs, i): Promise<HeadGroup> => {
    const oids = blobs.map((b) => b.oid);
    const key = groupKey(oids);
    const known = req.reuse.groups.get(key);
    if (known && (await storedWithSize(req.store, known.pack)) && (await storedWithSize(req.store, known.idx))) {
      const found = groupSpans(await req.store.read(known.idx.digest), known.pack.size, oids, i + 1);
      if (found) {
        for (const [oid, span] of found) spans.set(oid, span);
        stats.groupsReused++;
        return { key, pack: known };
      }
      // A wrong entry must not fail every later build of this commit: pack the group again.
      log.warn(`blob group ${key}: the stored pack ${known.name} does not hold exactly its blobs; packing it again`);
    }
    const built = await packOne(repo, oids, join(packDir, `group${i}`));
    const found = groupSpans(readFileSync(built.idxPath), statSync(built.packPath).size, oids, i + 1);
    if (!found) throw new SnapError('build-failed', `blob group ${key}: pack-objects did not pack exactly its ${oids.length} blobs`);
    for (const [oid, span] of found) spans.set(oid, span);
    return { key, pack: await storePack(built, put) };
  });

  report('writing file table');
  const table: TableEntry[] = leaves.map((l, i) => {
    const content = converted.get(i);
    const span = l.type === 'blob' ? spans.get(l.oid) : undefined;
    if (l.type === 'blob' && !span) throw new SnapError('build-failed', `blob ${l.oid} missing from HEAD packs`);
    return {
      path: l.path,
      mode: l.mode,
      oid: Buffer.from(l.oid, 'hex'),
      size: l.mode === MODE_GITLINK ? 0 : content ? content.length : l.size,
      flags: content ? FLAG_CONVERTED : 0,
      pack: span ? span.pack : NO_PACK,
      packOffset: span ? span.offset : 0,
      packLength: span ? span.length : 0,
    };
  });
  const rawTable = encodeTable(table);
  const tablePath = join(req.scratchDir, 'table');
  writeFileSync(tablePath, compress(rawTable, { compressionLevel: opt.zstdLevel }));
  const tableRef = { ...(await put(tablePath)), entries: table.length, rawSize: rawTable.length };

  const archiveItems: ArchiveItem[] = [];
  leaves.forEach((l, i) => {
    if (l.mode === MODE_GITLINK) return;
    const content = converted.get(i);
    archiveItems.push(content ? { oid: l.oid, content } : { oid: l.oid });
  });
  const buildArchive = async () => {
    report('writing archive');
    const a = await buildCdcArchive({ repoDir: repo, items: archiveItems, outDir: chunkDir, cdc: opt.archive, level: opt.zstdLevel, store: req.store, reuse: req.reuse.chunks, format: BUILD_FORMAT });
    stats.chunks = a.chunks.length;
    stats.chunksReused = a.reused;
    stats.newBytes += a.newBytes;
    return { bytes: a.bytes, chunks: a.chunks };
  };
  const isConverted = converted.size > 0;
  // A converted file's bytes exist only in the archive, so a depth-1 clone needs it too.
  const early = isConverted ? await buildArchive() : null;
  const shallow: CommitBuild = { commit, stage: 'shallow', skeleton, groups, table: tableRef, converted: isConverted, archive: early };
  await onShallow(shallow);
  const archive = early ?? (await buildArchive());
  return { ...shallow, stage: 'files', archive };
}

/** SHA-256 over the build format and the blob ids of a group, in order (the reuse key). */
export function groupKey(oids: readonly string[]): string {
  return sha256Hex(`snapclone-build-${BUILD_FORMAT}\n${oids.join('\n')}`);
}

/** Where each blob of a group sits in its pack, or null unless the pack holds exactly `oids`. */
function groupSpans(idxBytes: Buffer, packSize: number, oids: readonly string[], pack: number): Map<string, { pack: number; offset: number; length: number }> | null {
  const idx = parseIdx(idxBytes);
  const wanted = new Set(oids);
  if (idx.count !== wanted.size) return null;
  const out = new Map<string, { pack: number; offset: number; length: number }>();
  for (const s of objectSpans(idx, packSize)) {
    if (!wanted.has(s.oid)) return null;
    out.set(s.oid, { pack, offset: s.offset, length: s.length });
  }
  return out;
}

function uniqueBlobs(leaves: readonly TreeItem[]): BlobInfo[] {
  const seen = new Set<string>();
  const out: BlobInfo[] = [];
  for (const l of leaves) {
    if (l.type !== 'blob' || seen.has(l.oid)) continue;
    seen.add(l.oid);
    out.push({ oid: l.oid, size: l.size });
  }
  return out;
}

/** One undeltified pack of exactly `oids` (recompressed: its bytes depend only on the objects). */
async function packOne(repo: string, oids: readonly string[], base: string): Promise<BuiltPack> {
  const packs = await packObjects(repo, oids.join('\n') + '\n', base, ['--window=0', '--no-reuse-object', '--non-empty']);
  if (packs.length !== 1) throw new SnapError('build-failed', `expected one pack for ${base}, got ${packs.length}`);
  return packs[0]!;
}

async function storePack(p: BuiltPack, put: (path: string) => Promise<ArtifactRef>): Promise<PackRef> {
  const pack = await put(p.packPath);
  const idx = await put(p.idxPath);
  return { name: p.name, pack, idx, objects: p.objects };
}

/**
 * Whether an object is in a commit's tree closure never changes, but finding out
 * lists the whole tree. So followedTags keeps its answers (per mirror, commit and
 * target; bounded), and the closure of the commit built last (buildCommit has just
 * listed it; a sync asks followedTags about that commit next).
 */
const closureAnswers = new Map<string, boolean>();
const MAX_CLOSURE_ANSWERS = 100_000;
let lastClosure: { key: string; objects: Set<string> } | null = null;

function rememberClosure(mirrorDir: string, commit: string, rootTree: string, trees: string[], leaves: readonly TreeItem[]): void {
  const objects = new Set([rootTree, ...trees]);
  for (const l of leaves) if (l.type === 'blob') objects.add(l.oid);
  lastClosure = { key: `${mirrorDir}\0${commit}`, objects };
}

async function inTreeClosure(mirrorDir: string, commit: string, targets: readonly string[]): Promise<Set<string>> {
  const key = `${mirrorDir}\0${commit}`;
  const unknown = targets.filter((t) => !closureAnswers.has(`${key}\0${t}`));
  if (unknown.length > 0) {
    if (lastClosure?.key !== key) {
      const { trees, leaves } = await listTree(mirrorDir, commit);
      const rootTree = (await runGit(['rev-parse', `${commit}^{tree}`], { cwd: mirrorDir })).toString().trim();
      rememberClosure(mirrorDir, commit, rootTree, trees, leaves);
    }
    for (const t of unknown) {
      if (closureAnswers.size >= MAX_CLOSURE_ANSWERS) closureAnswers.delete(closureAnswers.keys().next().value!);
      closureAnswers.set(`${key}\0${t}`, lastClosure!.objects.has(t));
    }
  }
  return new Set(targets.filter((t) => closureAnswers.get(`${key}\0${t}`)));
}

/**
 * git's tag following for a --depth 1 clone of `commit`: the tags of `refs` whose fully
 * peeled target is the commit, one of its trees or one of its blobs. Sorted names.
 */
export async function followedTags(mirrorDir: string, commit: string, refs: RefEntry[]): Promise<string[]> {
  const tags = refs.filter((r) => r.name.startsWith('refs/tags/'));
  const others = tags.filter((r) => (r.peeled ?? r.oid) !== commit);
  let closure = new Set<string>();
  if (others.length > 0) {
    // Only a tag of a tree or blob needs the tree's closure; ask git the types first.
    const targets = [...new Set(others.map((r) => r.peeled ?? r.oid))];
    const out = (await runGit(['cat-file', '--batch-check=%(objectname) %(objecttype)'], { cwd: mirrorDir, input: targets.join('\n') + '\n' })).toString('latin1');
    const treeish = out.split('\n').filter((l) => / (tree|blob)$/.test(l)).map((l) => l.slice(0, 40));
    if (treeish.length > 0) closure = await inTreeClosure(mirrorDir, commit, treeish);
  }
  return tags
    .filter((r) => {
      const target = r.peeled ?? r.oid;
      return target === commit || closure.has(target);
    })
    .map((r) => r.name)
    .sort();
}

/**
 * A pack of every tag object on the chains of the given annotated tags (null when none are annotated).
 * `added(n)` is called with the bytes it stored that the store did not hold yet.
 */
export async function buildTagPack(mirrorDir: string, tags: RefEntry[], scratchDir: string, store: ArtifactStore, added: (n: number) => void = () => {}): Promise<PackRef | null> {
  const annotated = [...new Set(tags.filter((r) => r.peeled !== undefined).map((r) => r.oid))].sort();
  if (annotated.length === 0) return null;
  // Sorted input: the pack's bytes depend on the set of tags only, not on ref order.
  const chain = [...new Set(await tagChains(mirrorDir, annotated))].sort();
  mkdirSync(scratchDir, { recursive: true });
  const built = await packOne(mirrorDir, chain, join(scratchDir, 'tags'));
  return storePack(built, (path) => putCounted(store, path, added));
}
