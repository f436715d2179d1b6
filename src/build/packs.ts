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

/** Run pack-objects (single-threaded, deterministic) on `input`; returns the packs written as `<base>-<sha1>.pack/.idx`. */
export async function packObjects(repoDir: string, input: string | Buffer, base: string, args: string[]): Promise<BuiltPack[]> {
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

/**
 * Every tag object on the chains of the given tag objects (a tag of a tag of a
 * commit: both tags), each once, in order of first appearance. The inner tags of
 * a chain may have no ref of their own, yet a clone needs them to peel the outer.
 */
export async function tagChains(repoDir: string, tagOids: string[]): Promise<string[]> {
  const out: string[] = [];
  const seen = new Set<string>(tagOids);
  let level = [...seen];
  while (level.length > 0) {
    out.push(...level);
    const batch = await runGit(['cat-file', '--batch'], { cwd: repoDir, input: level.join('\n') + '\n' });
    const next: string[] = [];
    let at = 0;
    for (const oid of level) {
      const nl = batch.indexOf(0x0a, at);
      const header = /^([0-9a-f]{40}) (\w+) (\d+)$/.exec(batch.subarray(at, nl).toString('latin1'));
      if (!header || header[1] !== oid || header[2] !== 'tag') throw new Error(`cat-file: ${oid} is not a tag object`);
      const body = batch.subarray(nl + 1, nl + 1 + Number(header[3])).toString('latin1');
      at = nl + 1 + Number(header[3]) + 1; // content, then LF
      const target = /^object ([0-9a-f]{40})\ntype (\w+)\n/.exec(body);
      if (!target) throw new Error(`tag ${oid} has no object/type header`);
      if (target[2] === 'tag' && !seen.has(target[1]!)) {
        seen.add(target[1]!);
        next.push(target[1]!);
      }
    }
    level = next;
  }
  return out;
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
