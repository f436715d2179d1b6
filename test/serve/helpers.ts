/**
 * Helpers for the server tests: hermetic git, upstream repositories in temp
 * dirs, a real server on an ephemeral port, JSON calls and job polling.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startServer, type RunningServer, type ServeOptions } from '../../src/serve/server.js';

// The server runs git in this process's environment (its "network" git uses the
// operator's config): make it hermetic for the whole test file.
process.env.GIT_CONFIG_NOSYSTEM = '1';
process.env.GIT_CONFIG_GLOBAL = '/dev/null';
process.env.GIT_TERMINAL_PROMPT = '0';
// Log everything, so checks on what the server writes to stderr see every line it could write.
process.env.SNAPCLONE_LOG = 'debug';
for (const k of ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_CONFIG_PARAMETERS']) delete process.env[k];

/** Everything the process writes to stderr (the server logs there), kept for inspection and not echoed. */
export const stderrLog: string[] = [];
const realStderrWrite = process.stderr.write.bind(process.stderr);
process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
  stderrLog.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
  if (process.env.SNAPCLONE_TEST_VERBOSE) return (realStderrWrite as (...a: unknown[]) => boolean)(chunk, ...rest);
  const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
  cb?.();
  return true;
}) as typeof process.stderr.write;

const dirs: string[] = [];
process.on('exit', () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

export function tempDir(prefix = 'snapclone-serve-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export function cleanup(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

let clock = 1_700_000_000;

export function git(cwd: string, args: string[]): string {
  const t = `${clock++} +0000`;
  const r = spawnSync('git', args, {
    cwd,
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'Test Author',
      GIT_AUTHOR_EMAIL: 'author@example.invalid',
      GIT_COMMITTER_NAME: 'Test Committer',
      GIT_COMMITTER_EMAIL: 'committer@example.invalid',
      GIT_AUTHOR_DATE: t,
      GIT_COMMITTER_DATE: t,
      LC_ALL: 'C',
    },
  });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed: ${r.stderr.toString()}`);
  return r.stdout.toString().trim();
}

export function writeFiles(repo: string, files: Record<string, string>): void {
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(dirname(join(repo, p)), { recursive: true });
    writeFileSync(join(repo, p), content);
  }
}

/** Commit the given files (added or changed) and return the commit id. */
export function commit(repo: string, files: Record<string, string>, message: string): string {
  writeFiles(repo, files);
  git(repo, ['add', '-A']);
  git(repo, ['commit', '-q', '-m', message]);
  return git(repo, ['rev-parse', 'HEAD']);
}

/** A small upstream: main with two commits, an annotated tag and a second branch. Returns its path. */
export function makeUpstream(parent: string, name = 'upstream'): { dir: string; head: string } {
  const dir = join(parent, name);
  mkdirSync(dir);
  git(dir, ['init', '-q', '-b', 'main']);
  commit(dir, { 'README.md': '# hello\n', 'src/a.txt': 'a\n' }, 'first');
  git(dir, ['tag', '-a', '-m', 'v1', 'v1']);
  const head = commit(dir, { 'src/b.txt': 'b\n'.repeat(100), 'bin/run.sh': '#!/bin/sh\necho hi\n' }, 'second');
  git(dir, ['branch', 'dev', 'HEAD~1']);
  return { dir, head };
}

export async function startTestServer(opts: Partial<ServeOptions> = {}): Promise<RunningServer & { dataDir: string }> {
  const dataDir = opts.dataDir ?? tempDir('snapclone-data-');
  const s = await startServer({ host: '127.0.0.1', port: 0, dataDir, ...opts });
  return Object.assign(s, { dataDir });
}

export interface JsonAnswer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

export async function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<JsonAnswer> {
  const res = await fetch(base + path, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Poll a job until it ends. */
export async function waitJob(base: string, id: number, timeoutMs = 30_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await call(base, 'GET', `/v1/jobs/${id}`);
    if (r.status !== 200) throw new Error(`GET /v1/jobs/${id} answered ${r.status}: ${r.text}`);
    if (r.json.state === 'succeeded' || r.json.state === 'failed') return r.json;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${r.json.state} after ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** Register an upstream and wait for its first build to succeed. */
export async function addAndBuild(base: string, url: string, name: string, headers: Record<string, string> = {}): Promise<any> {
  const add = await call(base, 'POST', '/v1/repos', { url, name }, headers);
  if (add.status !== 201) throw new Error(`add answered ${add.status}: ${add.text}`);
  const job = await waitJob(base, add.json.job.id);
  if (job.state !== 'succeeded') throw new Error(`first build failed: ${job.error}`);
  return job;
}
