/** Helpers for the build tests: small real repositories, a store, and checks with real git. */
import fs from 'node:fs';
import path from 'node:path';
import { decompress } from 'zstd-napi';
import { git, gitText, tmpDir } from '../support/git.js';
import { FIXTURE_EPOCH, randomBytes } from '../support/fixtures.js';
import { LocalArtifactStore } from '../../src/storage/local/local-store.js';
import type { PackRef } from '../../src/clonepack/manifest.js';
import { decodeTable, type TableEntry } from '../../src/clonepack/filetable.js';
import type { CommitBuild } from '../../src/builder/commit-build.js';

export function newStore(): LocalArtifactStore {
  return new LocalArtifactStore(tmpDir('build-store'));
}

/** A work repository whose .git serves as the mirror. */
export function newRepo(): string {
  const dir = tmpDir('build-repo');
  git(['init', '-q', '-b', 'main'], { cwd: dir });
  return dir;
}

let tick = 0;
/** Write files (null deletes), commit everything, return the commit id. */
export function commitFiles(repo: string, files: Record<string, Buffer | string | null>, message = `commit ${tick}`): string {
  for (const [p, content] of Object.entries(files)) {
    const abs = path.join(repo, p);
    if (content === null) fs.rmSync(abs, { force: true });
    else {
      fs.mkdirSync(path.dirname(abs), { recursive: true });
      fs.writeFileSync(abs, content);
    }
  }
  git(['add', '-A'], { cwd: repo });
  git(['commit', '-q', '--allow-empty', '-m', message], { cwd: repo, date: FIXTURE_EPOCH + tick++ * 60 });
  return gitText(['rev-parse', 'HEAD'], { cwd: repo });
}

/** `n` files of pseudo-random text-ish content, `size` bytes each, under dir/. */
export function manyFiles(n: number, size: number, seed: number, dir = 'src'): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (let i = 0; i < n; i++) out[`${dir}/f${String(i).padStart(4, '0')}.bin`] = randomBytes(size, seed * 100000 + i);
  return out;
}

/** A bare mirror of the work repository (`git clone --mirror`, then fetched again on later calls), like the server's. */
export function gitDir(repo: string): string {
  const mirror = `${repo}.mirror.git`;
  if (!fs.existsSync(mirror)) git(['clone', '-q', '--mirror', repo, mirror], { cwd: path.dirname(repo) });
  else git(['fetch', '-q', '--prune', '--force', 'origin'], { cwd: mirror });
  return mirror;
}

/** Copy packs out of the store into an empty repository's objects/pack. */
export async function installPacks(store: LocalArtifactStore, packs: PackRef[], repo: string): Promise<void> {
  const dir = path.join(repo, '.git', 'objects', 'pack');
  for (const p of packs) {
    fs.writeFileSync(path.join(dir, `${p.name}.pack`), await store.read(p.pack.digest));
    fs.writeFileSync(path.join(dir, `${p.name}.idx`), await store.read(p.idx.digest));
  }
}

export function emptyRepo(): string {
  const dir = tmpDir('build-check');
  git(['init', '-q'], { cwd: dir });
  return dir;
}

export async function readTable(store: LocalArtifactStore, b: CommitBuild): Promise<TableEntry[]> {
  const raw = Buffer.from(decompress(await store.read(b.table.digest)));
  return decodeTable(raw, b.table.entries, 1 + b.groups.length);
}

export async function readArchive(store: LocalArtifactStore, b: CommitBuild): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const c of b.archive!.chunks) parts.push(Buffer.from(decompress(await store.read(c.digest))));
  return Buffer.concat(parts);
}

/** Object ids of `git rev-list --objects` (sorted). */
export function revListObjects(repo: string, args: string[]): string[] {
  return gitText(['rev-list', '--objects', ...args], { cwd: repo })
    .split('\n')
    .filter(Boolean)
    .map((l) => l.slice(0, 40))
    .sort();
}

/** Object ids held by a pack's .idx, via git show-index. */
export async function packObjectIds(store: LocalArtifactStore, p: PackRef, cwd: string): Promise<string[]> {
  const out = git(['show-index'], { cwd, input: await store.read(p.idx.digest) }).toString();
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[1]!)
    .sort();
}
