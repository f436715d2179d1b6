/**
 * Packs made by git pack-objects (git's own machinery is the fastest and the
 * reference), single-threaded so the same objects always give the same bytes.
 * What goes into them is decided by the callers: commit-build.ts (HEAD packs:
 * skeleton, blob groups, tag pack) and levels.ts (history levels).
 */
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { runGit, type GitRunOptions } from './gitproc.js';
import { parseIdx } from '../git/idx.js';

export interface BuiltPack {
  name: string; // pack-<sha1>
  packPath: string;
  idxPath: string;
  objects: number;
}

/** Run pack-objects (single-threaded, deterministic) on `input`; returns the packs written as `<base>-<sha1>.pack/.idx`. */
export async function packObjects(repoDir: string, input: NonNullable<GitRunOptions['input']>, base: string, args: string[]): Promise<BuiltPack[]> {
  // pack-objects writes its temporary pack into the repository's objects/pack and leaves it
  // there when it dies (a full disk: the mirror then keeps the space the failed build took).
  // An object directory of its own next to `base` (in the build's scratch, removed with it),
  // with the mirror's as an alternate, keeps the mirror untouched. Same objects, same packs:
  // the output bytes do not change.
  const odb = `${base}.odb`;
  mkdirSync(join(odb, 'pack'), { recursive: true });
  let out: Buffer;
  try {
    const objects = await objectDir(repoDir);
    out = await runGit(['-c', 'pack.threads=1', 'pack-objects', '-q', ...args, base], {
      cwd: repoDir,
      input,
      extraEnv: { GIT_OBJECT_DIRECTORY: odb, GIT_ALTERNATE_OBJECT_DIRECTORIES: objects },
    });
  } finally {
    rmSync(odb, { recursive: true, force: true });
  }
  const hashes = out.toString('utf8').split('\n').filter(Boolean);
  return hashes.map((h) => {
    const idxPath = `${base}-${h}.idx`;
    const idx = parseIdx(readFileSync(idxPath));
    return { name: `pack-${h}`, packPath: `${base}-${h}.pack`, idxPath, objects: idx.count };
  });
}

const objectDirs = new Map<string, Promise<string>>();

/** A repository's object directory (asked of git once per repository). */
function objectDir(repoDir: string): Promise<string> {
  const key = resolve(repoDir);
  let dir = objectDirs.get(key);
  if (!dir) {
    dir = runGit(['rev-parse', '--git-path', 'objects'], { cwd: key }).then((b) => resolve(key, b.toString('utf8').trim()));
    dir.catch(() => objectDirs.delete(key));
    objectDirs.set(key, dir);
  }
  return dir;
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
