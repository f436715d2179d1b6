/**
 * History levels (issue 7).
 *
 * The history of a repository is a chain of immutable levels, oldest first,
 * disjoint: each level's packs hold the objects reachable from its tips and
 * not from the tips of earlier levels. A sync adds one small level for what is
 * new; compaction merges the newest levels geometrically: while the level older
 * than the newest run is smaller than twice the run's bytes, it joins the run,
 * and the run is repacked as one level (also whenever the chain would exceed
 * MAX_LEVELS). So a chain holds O(log) levels and a push costs a pack of what it
 * added, plus now and then a merge of small recent levels. The rule weighs the new
 * level by its objects' sizes in the mirror (%(objectsize:disk)) before packing
 * it, so a push that triggers a merge packs its objects once, in the merge.
 *
 * A merge repacks from the CURRENT tips only (force-pushed garbage of the merged
 * levels is dropped) minus what the older, kept levels hold. The merged levels
 * stay in the store (earlier manifests name them); only later chains stop naming them.
 *
 * Packs: `git pack-objects` single-threaded (deterministic for one mirror),
 * --delta-base-offset, split at --max-pack-size (512 MiB), never thin (each pack
 * is self-contained). A level with no older levels (the first build, a full
 * compaction: the big cases) is `pack-objects --revs <tips>`, so git walks the
 * history itself and nothing of it passes through Node. Otherwise the objects
 * come from `git rev-list --objects <tips> ^<covered>`, filtered against the
 * older levels' .idx files (rev-list alone may list an object that an
 * uninteresting commit beyond its walk holds: a file deleted and re-added, which
 * would put it in two levels), streamed line by line into pack-objects. The
 * older levels' object ids are cached by idx digest (idx-cache.ts): kept levels
 * are not parsed again on every push.
 */
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { PackRef } from '../clonepack/manifest.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { putCounted } from './put-counted.js';
import { gitLines, runGit } from './gitproc.js';
import { sharedIdxCache, type IdxOidCache, type OidSet } from './idx-cache.js';
import { packObjects, type BuiltPack } from './packs.js';

export interface HistoryLevel {
  /** Empty only for a level that added tips without new objects. */
  packs: PackRef[];
  /** Sorted unique object ids (ref tips) whose closure levels <= this one hold. */
  tips: string[];
  /** Sum of pack sizes (bytes). */
  bytes: number;
}

export interface LevelUpdate {
  levels: HistoryLevel[];
  /** False when every tip was already covered: nothing was built or stored. */
  changed: boolean;
  /** Bytes of packs and idx files this update stored that were not stored before. */
  newBytes: number;
}

/** Most levels a chain holds after an update. */
export const MAX_LEVELS = 12;
export const DEFAULT_MAX_PACK_BYTES = 512 << 20;

/** Bring the chain up to date with `tips` (every branch and tag oid of the mirror now). */
export async function updateLevels(req: {
  mirrorDir: string;
  levels: HistoryLevel[];
  tips: string[];
  scratchDir: string;
  store: ArtifactStore;
  maxPackBytes?: number;
  report?: (phase: string) => void;
  /** Object ids of stored idx files (default: one cache per process). */
  idxCache?: IdxOidCache;
}): Promise<LevelUpdate> {
  const report = req.report ?? (() => {});
  const tips = [...new Set(req.tips)].sort();
  const covered = new Set(req.levels.flatMap((l) => l.tips));
  const uncovered = tips.filter((t) => !covered.has(t));
  if (uncovered.length === 0) return { levels: req.levels, changed: false, newBytes: 0 };
  mkdirSync(req.scratchDir, { recursive: true });
  let counter = 0;
  const build = (negatives: string[], older: HistoryLevel[]) =>
    buildLevelPacks(req.mirrorDir, tips, negatives, older, req.store, req.idxCache ?? sharedIdxCache, join(req.scratchDir, `level${counter++}`), req.maxPackBytes ?? DEFAULT_MAX_PACK_BYTES);
  let newBytes = 0;
  const store = async (packs: BuiltPack[], levelTips: string[]): Promise<HistoryLevel> => {
    const refs: PackRef[] = [];
    for (const p of packs) {
      const pack = await putCounted(req.store, p.packPath, (n) => (newBytes += n));
      const idx = await putCounted(req.store, p.idxPath, (n) => (newBytes += n));
      refs.push({ name: p.name, pack, idx, objects: p.objects });
    }
    return { packs: refs, tips: levelTips, bytes: refs.reduce((a, p) => a + p.pack.size, 0) };
  };

  // Force-pushed garbage may be gone from the mirror (gc): a covered tip we cannot
  // name as ^tip makes the walk fail, so start over from the current tips.
  if ((await missingObjects(req.mirrorDir, [...covered])).length > 0) {
    report('packing history (full)');
    return { levels: [await store(await build([], []), tips)], changed: true, newBytes };
  }

  // Whether the new level is kept or merged at once is decided on an estimate of its size
  // (the objects' sizes in the mirror), so a compaction does not pack the new objects twice.
  report('sizing new history');
  const freshBytes = req.levels.length === 0 ? 0 : await newObjectsDiskBytes(req.mirrorDir, walkOf(tips, [...covered]), await heldBy(req.levels, req.store, req.idxCache ?? sharedIdxCache));
  const bytes = [...req.levels.map((l) => l.bytes), freshBytes];
  const last = bytes.length - 1;
  let k = last;
  let run = bytes[last]!;
  while (k > 0 && (bytes[k - 1]! < 2 * run || k > MAX_LEVELS - 1)) {
    k--;
    run += bytes[k]!;
  }
  if (k === last) {
    report('packing new history');
    return { levels: [...req.levels, await store(await build([...covered], req.levels), uncovered)], changed: true, newBytes };
  }
  report('compacting history levels');
  const kept = req.levels.slice(0, k);
  const keptTips = new Set(kept.flatMap((l) => l.tips));
  const merged = await build([...keptTips], kept);
  const level = await store(merged, tips.filter((t) => !keptTips.has(t)));
  // Nothing left to record (the merged levels held only tips that are gone): drop it.
  const empty = level.packs.length === 0 && level.tips.length === 0;
  return { levels: empty ? kept : [...kept, level], changed: true, newBytes };
}

type LevelPack = BuiltPack & { packBytes: number };

/** Pack what `tips` reach and neither `negatives` nor the `older` levels hold. Files only; nothing stored yet. */
async function buildLevelPacks(
  repo: string,
  tips: string[],
  negatives: string[],
  older: HistoryLevel[],
  store: ArtifactStore,
  idxCache: IdxOidCache,
  dir: string,
  maxPackBytes: number,
): Promise<LevelPack[]> {
  mkdirSync(dir, { recursive: true });
  const walk = walkOf(tips, negatives);
  const args = ['--delta-base-offset', `--max-pack-size=${maxPackBytes}`, '--non-empty'];
  let packs: BuiltPack[];
  if (older.length === 0) {
    // Nothing to filter against (negatives come only from older levels' tips): git walks.
    packs = await packObjects(repo, walk, join(dir, 'history'), ['--revs', ...args]);
  } else {
    packs = await packObjects(repo, newObjectLines(repo, walk, await heldBy(older, store, idxCache), true), join(dir, 'history'), args);
  }
  return packs.map((p) => ({ ...p, packBytes: statSync(p.packPath).size })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** stdin of rev-list (and pack-objects --revs): what `tips` reach and `negatives` do not. */
function walkOf(tips: string[], negatives: string[]): string {
  return [...tips, ...negatives.map((n) => `^${n}`)].join('\n') + '\n';
}

async function heldBy(levels: HistoryLevel[], store: ArtifactStore, idxCache: IdxOidCache): Promise<OidSet[]> {
  const held: OidSet[] = [];
  for (const l of levels) for (const p of l.packs) held.push(await idxCache.get(store, p.idx.digest));
  return held;
}

/** Bytes the objects of `walk` that no level holds take in the mirror (git's %(objectsize:disk)). */
async function newObjectsDiskBytes(repo: string, walk: string, held: OidSet[]): Promise<number> {
  const out = await runGit(['cat-file', '--batch-check=%(objectsize:disk)'], { cwd: repo, input: newObjectLines(repo, walk, held, false) });
  let sum = 0;
  for (const line of out.toString('latin1').split('\n')) if (/^\d+$/.test(line)) sum += Number(line);
  return sum;
}

/**
 * The lines of `rev-list --objects` for `walk` whose object none of `held` holds, in
 * batches; with `paths` as rev-list wrote them (pack-objects uses the names for its
 * delta search), else the object ids only.
 */
async function* newObjectLines(repo: string, walk: string, held: OidSet[], paths: boolean): AsyncGenerator<Buffer> {
  let batch: string[] = [];
  for await (const line of gitLines(['rev-list', '--objects', '--stdin'], { cwd: repo, input: walk })) {
    if (!/^[0-9a-f]{40}( |$)/.test(line)) continue;
    const oid = Buffer.from(line.slice(0, 40), 'hex');
    if (held.some((s) => s.has(oid))) continue;
    batch.push(paths ? line : line.slice(0, 40));
    if (batch.length >= 4096) {
      yield Buffer.from(batch.join('\n') + '\n', 'latin1');
      batch = [];
    }
  }
  if (batch.length > 0) yield Buffer.from(batch.join('\n') + '\n', 'latin1');
}

async function missingObjects(repo: string, oids: string[]): Promise<string[]> {
  if (oids.length === 0) return [];
  const out = await runGit(['cat-file', '--batch-check=%(objectname)'], { cwd: repo, input: oids.join('\n') + '\n' });
  return out
    .toString('latin1')
    .split('\n')
    .filter((l) => l.endsWith(' missing'))
    .map((l) => l.slice(0, 40));
}
