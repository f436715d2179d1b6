/**
 * Planning a clone's writer work from the file table: how many threads are
 * worth starting, which blobs of which HEAD pack go to which task, and which
 * entries have bytes in which archive chunk. Pure functions.
 */
import { isConverted, MODE_GITLINK, type TableEntry } from '../clonepack/filetable.js';
import { chunkStarts } from '../clonepack/layout.js';
import type { Manifest, PackRef } from '../clonepack/manifest.js';
import { integrityError } from '../util/errors.js';

/** Where a clone's work tree comes from, and which packs it downloads for .git. */
export interface TreeSources {
  /** Work tree decompressed from the archive (else inflated from the HEAD packs). */
  treeFromArchive: boolean;
  /** HEAD packs for .git/objects (--depth 1). */
  headPacks: PackRef[];
  /** History packs for .git/objects (full editable clones). */
  historyPacks: PackRef[];
}

/**
 * Files mode and full clones read the archive: zstd frames hold the same bytes
 * as the undeltified HEAD packs in fewer bytes, at one decompression per chunk
 * instead of one inflate per blob; a full clone's history packs already hold
 * every object. A depth-1 clone inflates the HEAD packs it downloads for its
 * object store anyway. Without a commit (HEAD names a missing branch) a full
 * clone still gets every branch and tag.
 */
export function treeSources(m: Manifest, mode: 'editable' | 'files', shallow: boolean): TreeSources {
  return {
    treeFromArchive: m.commit !== null && (mode === 'files' || !shallow || (depth1FromArchive(m) && archiveIsWhole(m))),
    headPacks: mode === 'editable' && shallow && m.commit ? m.headPacks : [],
    historyPacks: mode === 'editable' && !shallow ? m.historyPacks : [],
  };
}

/** The manifest's archive holds the whole work tree (files and full manifests; shallow ones of builds with converted files). */
export function archiveIsWhole(m: Manifest): boolean {
  return m.archive.bytes > 0 && m.archive.chunks.length > 0;
}

/**
 * Depth 1: whether to take the work tree from the archive (asking for the files
 * manifest of the same commit, which also names the HEAD packs) while the HEAD
 * packs stream to disk for .git, instead of inflating every blob from them.
 * The archive costs one more resolve (and manifest) round trip and its bytes on
 * top of the HEAD packs; it saves one zlib inflate and a task slice per blob.
 * Measured 2026-12-02 (loopback, tmpfs, 2 shared CPUs under load, medians of 3,
 * packs vs archive, wall ms / CPU s / MB on the wire):
 *   vuejs/core   705 files: 312 / 0.37 / 1.8   vs   411 / 0.33 / 3.3   packs
 *   git/git    4.6k files: 3028 / 2.00 / 14.3  vs  2465 / 1.62 / 25.4  archive
 *   100k tree  100k files: 10817 / 6.76 / 57.1 vs  7030 / 4.73 / 85.8  archive
 * So: the archive past INLINE_MAX_FILES files (where writer threads start).
 * The extra bytes cost ~8 ns/B at 1 Gbit/s (git/git +89 ms, still ahead) but
 * ~80 ns/B at 100 Mbit/s (git/git +0.9 s against ~0.5 s saved), hence the
 * override: $SNAPCLONE_DEPTH1_TREE=packs (slow links) or =archive.
 * With 1 MiB HEAD-pack groups (8 packs, not 23) vuejs/core on a quiet machine
 * is 152 ms from the archive against 174 from the packs, for +1.4 MB: +12 ms at
 * 1 Gbit/s, +117 ms at 100 Mbit/s; small trees stay with the packs.
 */
export function depth1FromArchive(m: Manifest): boolean {
  const forced = process.env.SNAPCLONE_DEPTH1_TREE;
  if (forced === 'archive') return true;
  if (forced === 'packs') return false;
  return m.table.entries > INLINE_MAX_FILES;
}

/** Blobs per writer task: small enough to spread one pack over all threads. */
const TASK_RAW_BYTES = 2 << 20;
const TASK_MAX_OBJECTS = 2000;

/** Up to this much work, writing on the main thread beats booting a thread (25-50 ms of CPU each). */
export const INLINE_MAX_FILES = 2000;
const INLINE_MAX_BYTES = 16 << 20;

/**
 * Writer threads worth starting: none for small work (it runs on the main
 * thread), else one per ~1000 files or ~8 MiB. $SNAPCLONE_WORKERS, when set,
 * always uses threads (the pool caps the count).
 */
export function threadsFor(table: TableEntry[]): number {
  let bytes = 0;
  for (const e of table) bytes += e.size;
  return threadsForWork(table.length, bytes);
}

/**
 * threadsFor() as far as the manifest tells, before the table is in: its entry
 * count, and the work tree's bytes where the archive holds them all. Booting
 * them all then, not one, has every thread ready when the first chunks land
 * (a thread takes ~25 ms to boot).
 */
export function threadsForManifest(m: Manifest): number {
  return threadsForWork(m.table.entries, m.archive.bytes);
}

function threadsForWork(files: number, bytes: number): number {
  const forced = Number(process.env.SNAPCLONE_WORKERS);
  if (Number.isInteger(forced) && forced > 0) return forced;
  if (files <= INLINE_MAX_FILES && bytes <= INLINE_MAX_BYTES) return 0;
  return Math.max(1, Math.ceil(Math.max(files / 1000, bytes / (8 << 20))));
}

/** Per HEAD pack: its blobs in offset order, each with the entries (paths) that use it; converted entries excluded. */
export function objectsByPack(table: TableEntry[], packCount: number): Map<number, number[]>[] {
  const out = Array.from({ length: packCount }, () => new Map<number, number[]>());
  table.forEach((e, i) => {
    if (e.mode === MODE_GITLINK || isConverted(e)) return;
    const m = out[e.pack]!;
    const list = m.get(e.packOffset);
    if (list) list.push(i);
    else m.set(e.packOffset, [i]);
  });
  return out;
}

export function splitObjects(objects: Map<number, number[]>, table: TableEntry[]): Float64Array[] {
  const sorted = [...objects.entries()].sort((a, b) => a[0] - b[0]);
  const tasks: Float64Array[] = [];
  let cur: number[] = [];
  let raw = 0;
  let count = 0;
  for (const [offset, entries] of sorted) {
    const first = table[entries[0]!]!;
    cur.push(offset, first.packLength, entries.length, ...entries);
    raw += first.size;
    count++;
    if (raw >= TASK_RAW_BYTES || count >= TASK_MAX_OBJECTS) {
      tasks.push(Float64Array.from(cur));
      cur = [];
      raw = 0;
      count = 0;
    }
  }
  if (cur.length) tasks.push(Float64Array.from(cur));
  return tasks;
}

/** Which entries have bytes in which chunk (optionally only some entries). */
export function entriesPerChunk(m: Manifest, table: TableEntry[], offsets: number[], only: Set<number> | null): Map<number, number[]> {
  const starts = chunkStarts(m.archive.chunks);
  const out = new Map<number, number[]>();
  let c = 0;
  table.forEach((e, i) => {
    if (e.mode === MODE_GITLINK || e.size === 0 || (only && !only.has(i))) return;
    const start = offsets[i]!;
    const end = start + e.size;
    while (c + 1 < starts.length && starts[c + 1]! <= start) c++;
    for (let k = c; k < starts.length && starts[k]! < end; k++) (out.get(k) ?? out.set(k, []).get(k)!).push(i);
  });
  const total = starts.length ? starts[starts.length - 1]! + m.archive.chunks[starts.length - 1]!.rawSize : 0;
  const last = table.reduce((a, e, i) => (e.mode === MODE_GITLINK ? a : Math.max(a, offsets[i]! + e.size)), 0);
  if (last > total) throw integrityError('the archive is shorter than the file table');
  return out;
}

