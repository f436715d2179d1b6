/**
 * Run the real git for the binary-format tests, hermetically: no system or
 * global config, fixed identities, C locale, UTC, and no inherited GIT_*
 * variables (a test run from a git hook must not see GIT_DIR).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';

export const AUTHOR = { name: 'Ada Author', email: 'ada@example.invalid' };
export const COMMITTER = { name: 'Cy Committer', email: 'cy@example.invalid' };

export function gitEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('GIT_') && !k.startsWith('LC_') && k !== 'LANG') env[k] = v;
  }
  return {
    ...env,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_AUTHOR_NAME: AUTHOR.name,
    GIT_AUTHOR_EMAIL: AUTHOR.email,
    GIT_COMMITTER_NAME: COMMITTER.name,
    GIT_COMMITTER_EMAIL: COMMITTER.email,
    GIT_TERMINAL_PROMPT: '0',
    LC_ALL: 'C',
    TZ: 'UTC',
    ...extra,
  };
}

export interface RunOptions {
  input?: string | Buffer;
  env?: Record<string, string>;
}

export function git(cwd: string, args: string[], opts: RunOptions = {}): Buffer {
  return execFileSync('git', args, {
    cwd,
    env: gitEnv(opts.env),
    input: opts.input,
    maxBuffer: 1 << 30,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

export function gitText(cwd: string, args: string[], opts: RunOptions = {}): string {
  return git(cwd, args, opts).toString('utf8').replace(/\n+$/, '');
}

/** A temp dir for this test file, removed when the file's tests finish. */
export function tempRoot(prefix: string): string {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `snapclone-${prefix}-`)));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** `git init` a new repository at root/name (branch main) and return its path. */
export function initRepo(root: string, name: string): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir);
  git(dir, ['init', '-q', '-b', 'main']);
  return dir;
}

export function writeFiles(dir: string, files: Record<string, string | Buffer>): void {
  for (const [name, content] of Object.entries(files)) {
    const p = path.join(dir, name);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  }
}

/** Deterministic pseudo-random bytes (xorshift), so packs and deltas are reproducible. */
export function noise(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export function packFiles(repo: string): { pack: string; idx: string }[] {
  const dir = path.join(repo, '.git', 'objects', 'pack');
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.pack'))
    .map((f) => ({ pack: path.join(dir, f), idx: path.join(dir, f.replace(/\.pack$/, '.idx')) }));
}
