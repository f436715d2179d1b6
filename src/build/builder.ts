/**
 * Build the clonepack of one ref from a bare mirror: HEAD packs, history packs,
 * the file table and the work-tree archive, then the manifest naming them.
 * Everything is made in a scratch dir and moved into the artifact store only
 * when all of it exists; the caller publishes the ref record after that, so a
 * failed build publishes nothing.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compress } from 'zstd-napi';
import { runGit } from './gitproc.js';
import { listTree } from './tree.js';
import { checkoutConversions } from './attributes.js';
import { buildHeadPacks, buildHistoryPacks, tagChains, type BuiltPack } from './packs.js';
import { buildArchive, type ArchiveItem } from './archive.js';
import { encodeTable, FLAG_CONVERTED, MODE_GITLINK, NO_PACK, type TableEntry } from '../clonepack/filetable.js';
import { encodeManifest, MANIFEST_FORMAT, MANIFEST_VERSION, type Manifest, type PackRef, type RefEntry } from '../clonepack/manifest.js';
import { chunksWithConverted } from '../clonepack/layout.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { SnapError } from '../util/errors.js';

export interface BuildOptions {
  headPackRawBytes: number;
  historyPackMaxBytes: number;
  chunkRawBytes: number;
  zstdLevel: number;
  parallel: number;
}

export const DEFAULT_BUILD_OPTIONS: BuildOptions = {
  headPackRawBytes: 8 << 20,
  // Each split forces objects whose delta base landed in an earlier pack to be
  // stored whole: at 64 MiB, git/git's history grew from 303 to ~434 MiB. 512 MiB
  // keeps most repositories in one pack and still splits the very large ones.
  historyPackMaxBytes: 512 << 20,
  chunkRawBytes: 4 << 20,
  zstdLevel: Number(process.env.SNAPCLONE_ZSTD_LEVEL) || 6,
  parallel: 2,
};

export interface BuildRequest {
  mirrorDir: string;
  ref: string;
  refs: RefEntry[];
  defaultBranch: string | null;
  scratchDir: string;
  store: ArtifactStore;
  options?: Partial<BuildOptions>;
  /** History packs already built for the same refs (by an earlier build in the same sync). */
  reuseHistory?: PackRef[];
  report?: (phase: string) => void;
}

export interface BuildResult {
  manifest: Manifest;
  digest: string;
  size: number;
  sizes: { editable: number; shallow: number; files: number };
}

export async function buildClonepack(req: BuildRequest): Promise<BuildResult> {
  const opt = { ...DEFAULT_BUILD_OPTIONS, ...req.options };
  const report = req.report ?? (() => {});
  const repo = req.mirrorDir;
  mkdirSync(req.scratchDir, { recursive: true });

  let commit: string | null = null;
  const entry = req.refs.find((r) => r.name === req.ref);
  if (entry) {
    commit = entry.peeled ?? entry.oid;
    const type = (await runGit(['cat-file', '-t', commit], { cwd: repo })).toString().trim();
    if (type !== 'commit') throw new SnapError('build-failed', `${req.ref} points at a ${type}, not a commit`);
  } else if (req.refs.length > 0 && req.ref !== `refs/heads/${req.defaultBranch}`) {
    // Only the branch the upstream's HEAD names may be missing: git clone then
    // leaves HEAD unborn, and still fetches every branch and tag.
    throw new SnapError('not-found', `${req.ref} does not exist upstream`);
  }
  const tips = req.refs.map((r) => r.oid);

  let table: TableEntry[] = [];
  let headPacks: BuiltPack[] = [];
  let historyPacks: BuiltPack[] = [];
  let chunks: { path: string; digest: string; size: number; rawSize: number }[] = [];
  let followedTags: string[] | undefined;

  if (!commit && tips.length > 0 && !req.reuseHistory) {
    report('packing');
    const packDir = join(req.scratchDir, 'packs');
    mkdirSync(packDir, { recursive: true });
    historyPacks = await buildHistoryPacks(repo, tips, packDir, opt.historyPackMaxBytes);
  }

  if (commit) {
    report('reading tree');
    const { trees, leaves } = await listTree(repo, commit);
    const rootTree = (await runGit(['rev-parse', `${commit}^{tree}`], { cwd: repo })).toString().trim();
    // git's tag following for a depth-1 clone: every tag whose target it fetched
    // (the commit, a tree, a blob) comes along, with every tag object of its chain.
    const closure = new Set([commit, rootTree, ...trees]);
    for (const l of leaves) if (l.type === 'blob') closure.add(l.oid);
    const followed = req.refs.filter((r) => r.name.startsWith('refs/tags/') && closure.has(r.peeled ?? r.oid));
    followedTags = followed.map((r) => r.name);
    const tags = await tagChains(repo, followed.filter((r) => r.peeled !== undefined).map((r) => r.oid));
    report('checking attributes');
    const converted = await checkoutConversions(repo, commit, leaves, join(req.scratchDir, 'attr'));

    const seen = new Set<string>();
    const blobs: { oid: string; size: number }[] = [];
    for (const l of leaves) {
      if (l.type === 'blob' && !seen.has(l.oid)) {
        seen.add(l.oid);
        blobs.push({ oid: l.oid, size: l.size });
      }
    }
    const archiveItems: ArchiveItem[] = [];
    leaves.forEach((l, i) => {
      if (l.mode === MODE_GITLINK) return;
      const content = converted.get(i);
      archiveItems.push(content ? { oid: l.oid, content } : { oid: l.oid });
    });

    report('packing');
    const packDir = join(req.scratchDir, 'packs');
    const chunkDir = join(req.scratchDir, 'chunks');
    mkdirSync(packDir, { recursive: true });
    mkdirSync(chunkDir, { recursive: true });
    const [head, history, archive] = await Promise.all([
      buildHeadPacks(repo, { skeleton: [commit, ...tags, rootTree, ...trees], blobs }, packDir, opt.headPackRawBytes, opt.parallel),
      req.reuseHistory ? Promise.resolve([]) : buildHistoryPacks(repo, tips, packDir, opt.historyPackMaxBytes),
      buildArchive(repo, archiveItems, chunkDir, opt.chunkRawBytes, opt.zstdLevel),
    ]);
    headPacks = head.packs;
    historyPacks = history;
    chunks = archive;

    table = leaves.map((l, i) => {
      const content = converted.get(i);
      const span = l.type === 'blob' ? head.spans.get(l.oid) : undefined;
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
  }

  report('storing artifacts');
  const rawTable = encodeTable(table);
  const tableZ = compress(rawTable, { compressionLevel: opt.zstdLevel });
  const tablePath = join(req.scratchDir, 'table');
  writeFileSync(tablePath, tableZ);
  const put = async (path: string) => {
    const { digest, size } = await req.store.putFile(path); // the store hashes it: one read per artifact
    return { digest, size };
  };
  const packRef = async (p: BuiltPack): Promise<PackRef> => ({ name: p.name, pack: await put(p.packPath), idx: await put(p.idxPath), objects: p.objects });
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    mode: 'full',
    ref: req.ref,
    commit,
    defaultBranch: req.defaultBranch,
    refs: req.refs,
    followedTags,
    headPacks: await Promise.all(headPacks.map(packRef)),
    historyPacks: req.reuseHistory ?? (await Promise.all(historyPacks.map(packRef))),
    table: { ...(await put(tablePath)), entries: table.length, rawSize: rawTable.length },
    archive: { codec: 'zstd', bytes: 0, chunks: [] },
  };
  for (const c of chunks) {
    await req.store.putFile(c.path, c.digest);
    manifest.archive.chunks.push({ digest: c.digest, size: c.size, rawSize: c.rawSize });
    manifest.archive.bytes += c.rawSize;
  }
  const bytes = encodeManifest(manifest);
  const stored = await req.store.putBytes(bytes);
  return { manifest, digest: stored.digest, size: stored.size, sizes: modeSizes(manifest, table) };
}

/** What each clone mode downloads, for status. */
function modeSizes(m: Manifest, table: TableEntry[]): BuildResult['sizes'] {
  const sum = (xs: { size: number }[]) => xs.reduce((a, x) => a + x.size, 0);
  const packs = (ps: PackRef[]) => ps.reduce((a, p) => a + p.pack.size + p.idx.size, 0);
  const convertedChunks = sum(chunksWithConverted(m, table).map((i) => m.archive.chunks[i]!));
  // Full clones take the work tree from the archive; depth-1 clones inflate HEAD packs (see client/clone.ts).
  const archive = sum(m.archive.chunks);
  return {
    shallow: m.table.size + packs(m.headPacks) + convertedChunks,
    editable: m.table.size + packs(m.historyPacks) + archive,
    files: m.table.size + archive,
  };
}
