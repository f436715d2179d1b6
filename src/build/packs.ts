/**
 * Packs for a clonepack, made by git pack-objects (git's own machinery is the
 * fastest and the reference):
 *   - HEAD packs: the commit's closure, undeltified and recompressed
 *     (--no-reuse-object), cut into groups by size so the client can download
 *     and inflate them in parallel. Deterministic: the bytes depend only on the
 *     objects and zlib.
 *   - history packs: everything reachable from the refs, reusing the mirror's
 *     deltas, single-threaded so the same mirror always gives the same bytes,
 *     split by --max-pack-size (512 MiB) for parallel downloads of very large histories.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { runGit } from './gitproc.js';
import { parseIdx, objectSpans } from '../git/idx.js';

export interface BuiltPack {
  name: string; // pack-<sha1>
  packPath: string;
  idxPath: string;
  objects: number;
}

export interface PackedObjectSpan {
  pack: number; // index in the list of HEAD packs
  offset: number;
  length: number;
}

async function packObjects(repoDir: string, input: string, base: string, args: string[]): Promise<BuiltPack[]> {
  const out = await runGit(['-c', 'pack.threads=1', 'pack-objects', '-q', ...args, base], { cwd: repoDir, input });
  const hashes = out.toString('utf8').split('\n').filter(Boolean);
  return hashes.map((h) => {
    const idxPath = `${base}-${h}.idx`;
    const idx = parseIdx(readFileSync(idxPath));
    return { name: `pack-${h}`, packPath: `${base}-${h}.pack`, idxPath, objects: idx.count };
  });
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  });
  await Promise.all(workers);
  return out;
}

export interface HeadPackInput {
  /** Commit, tag objects and trees: they go into the first pack. */
  skeleton: string[];
  /** Unique blobs with their sizes, in the order files are listed. */
  blobs: { oid: string; size: number }[];
}

/** Build undeltified HEAD packs. Returns the packs and where each blob landed. */
export async function buildHeadPacks(
  repoDir: string,
  input: HeadPackInput,
  outDir: string,
  targetRawBytes: number,
  parallel: number,
): Promise<{ packs: BuiltPack[]; spans: Map<string, PackedObjectSpan> }> {
  const groups: string[][] = [[...input.skeleton]];
  let acc = 0;
  for (const b of input.blobs) {
    let g = groups[groups.length - 1]!;
    if (acc > 0 && acc + b.size > targetRawBytes) {
      g = [];
      groups.push(g);
      acc = 0;
    }
    g.push(b.oid);
    acc += b.size;
  }
  const built = await mapLimit(groups, parallel, async (oids, i) => {
    const packs = await packObjects(repoDir, oids.join('\n') + '\n', join(outDir, `head${i}`), ['--window=0', '--no-reuse-object', '--non-empty']);
    if (packs.length !== 1) throw new Error(`expected one HEAD pack for group ${i}, got ${packs.length}`);
    return packs[0]!;
  });
  const spans = new Map<string, PackedObjectSpan>();
  built.forEach((p, packIndex) => {
    const idx = parseIdx(readFileSync(p.idxPath));
    for (const s of objectSpans(idx, statSync(p.packPath).size)) spans.set(s.oid, { pack: packIndex, offset: s.offset, length: s.length });
  });
  return { packs: built, spans };
}

/** Build the history packs: every object reachable from `tips`. */
export async function buildHistoryPacks(repoDir: string, tips: string[], outDir: string, maxPackBytes: number): Promise<BuiltPack[]> {
  if (tips.length === 0) return [];
  return packObjects(repoDir, [...new Set(tips)].join('\n') + '\n', join(outDir, 'history'), [
    '--revs',
    '--delta-base-offset',
    `--max-pack-size=${maxPackBytes}`,
    '--non-empty',
  ]);
}
