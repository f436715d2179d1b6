/**
 * Mirror maintenance: a bare mirror gains one pack per fetch (automatic gc is off so nothing is
 * rewritten under a running build). Past SNAPCLONE_MIRROR_MAX_PACKS packs, `git repack -a -d`
 * folds them into one. The caller runs it under the mirror's lock (serve/sync.ts: inside the
 * sync's fetch lock, in the job that owns the repository), so no fetch or build of the mirror
 * runs meanwhile. Published levels are artifacts in the store and stay valid; levels packed
 * later may have other bytes (they reuse the repacked mirror's deltas), never other objects.
 */
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runGit } from './gitproc.js';

export function mirrorMaxPacks(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.SNAPCLONE_MIRROR_MAX_PACKS?.trim();
  const n = raw ? Number(raw) : 20;
  return Number.isSafeInteger(n) && n >= 0 ? n : 20;
}

export function packCount(dir: string): number {
  try {
    return readdirSync(join(dir, 'objects', 'pack')).filter((f) => f.endsWith('.pack')).length;
  } catch {
    return 0;
  }
}

/** Repack when the mirror holds more than `maxPacks` packs (0: never). Returns whether it did. */
export async function maybeRepackMirror(dir: string, maxPacks: number): Promise<boolean> {
  if (maxPacks <= 0 || packCount(dir) <= maxPacks) return false;
  // pack.threads=1: the same mirror repacks to the same bytes. -d drops the old packs only after
  // the new one is complete (and git readers retry a vanished pack), so the mirror is never half-repacked.
  const packDir = join(dir, 'objects', 'pack');
  const tmpFiles = (): string[] => {
    try {
      return readdirSync(packDir).filter((f) => f.startsWith('tmp_') || f.startsWith('.tmp-'));
    } catch {
      return [];
    }
  };
  const before = new Set(tmpFiles());
  try {
    await runGit(['-c', 'pack.threads=1', 'repack', '-a', '-d', '-q'], { cwd: dir, timeoutMs: 3_600_000 });
  } catch (err) {
    // A failed repack (a full disk, its time bound) leaves the old packs in place, so the mirror
    // is as good as before: remove only what it was writing, and rethrow for the caller to report.
    for (const f of tmpFiles()) if (!before.has(f)) rmSync(join(packDir, f), { force: true });
    throw err;
  }
  return true;
}
