/**
 * Real `snapclone serve` processes for the server-process tests: spawn the CLI,
 * learn the URL from its "snapclone serving on URL" log line, collect stderr.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = fileURLToPath(new URL('../../../bin/snapclone.js', import.meta.url));

/** Hermetic git for the server's child processes; everything logged. */
export function serverEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    SNAPCLONE_LOG: 'debug',
    ...extra,
  };
  for (const k of ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_CONFIG_PARAMETERS', 'SNAPCLONE_ADMIN_TOKEN']) delete env[k];
  return env;
}

export interface ServeProcess {
  child: ChildProcess;
  /** stderr so far. */
  stderr(): string;
  /** Resolves with the URL once the server logs that it serves, rejects if it exits first. */
  ready: Promise<string>;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Start a process and watch its stderr for the serving line. `cmd` defaults to node running the CLI. */
export function spawnServe(args: string[], opts: { env?: Record<string, string>; cmd?: string[] } = {}): ServeProcess {
  const [file, ...pre] = opts.cmd ?? [process.execPath, BIN];
  const child = spawn(file!, [...pre, ...args], { cwd: REPO_ROOT, env: serverEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let out = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const ready = new Promise<string>((resolve, reject) => {
    const look = () => {
      const m = /snapclone serving on (\S+)/.exec(err);
      if (m) resolve(m[1]!);
    };
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString('utf8');
      look();
    });
    child.stdout!.on('data', (b: Buffer) => (out += b.toString('utf8')));
    void exited.then(({ code, signal }) => reject(new Error(`server exited (${code ?? signal}) before serving:\n${err}${out}`)));
  });
  ready.catch(() => {}); // a test that expects the exit looks at `exited`
  return { child, stderr: () => err, ready, exited };
}

/** Run a CLI command to completion (guarded by a generous timeout: a hang fails the test instead of blocking it). */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env: serverEnv(env), stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Pids of live processes whose command line contains `needle` (to clean up a server a test orphaned). */
export function pidsWithArg(needle: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(needle)) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

export async function getJson(url: string): Promise<{ status: number; json: any }> {
  const res = await fetch(url);
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, json };
}

/** Poll until `check` holds, or fail after `timeoutMs` (a hang guard, not a speed assertion). */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
