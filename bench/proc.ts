/**
 * Processes the benchmarks start and must stop: snapclone servers, git
 * daemons, the private snapshot of the product under test, and the temp dirs
 * they use, all cleaned up on exit or Ctrl-C. Shared by run.ts and freshness.ts.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, createWriteStream, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { freePort, log, rmrf, timed, waitFor } from './lib.js';
import type { Machine } from './types.js';

export const NODE = process.execPath;

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let keepTemps = false;
let installed = false;

/** Remove dir at exit (unless keepTempDirs(true)). */
export function trackTemp(dir: string): void {
  tempDirs.add(dir);
}

/** Stop child at exit like the servers started here (peer servers, upstream servers). */
export function trackChild(child: ChildProcess): void {
  children.add(child);
}

export function untrackTemp(dir: string): void {
  tempDirs.delete(dir);
}

export function keepTempDirs(keep: boolean): void {
  keepTemps = keep;
}

/** Stop every child and remove every temp dir on exit, SIGINT and SIGTERM (once). */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  const cleanup = () => {
    for (const c of children) if (c.exitCode === null && c.pid) c.kill('SIGTERM');
    if (!keepTemps) for (const d of tempDirs) rmrf(d);
  };
  process.once('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      log(`${sig}: stopping`);
      cleanup();
      process.exit(130);
    });
}

function version(argv: string[]): string {
  try {
    return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0]!.trim();
  } catch {
    return `${argv[0]} (unavailable)`;
  }
}

export function machine(): Machine {
  return {
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? '?',
    memTotalBytes: totalmem(),
    kernel: release(),
    node: process.version,
    git: version(['git', '--version']),
    zstd: version(['zstd', '--version']).replace(/^\*+\s*/, '').replace(/, by .*$/, ''),
    tar: version(['tar', '--version']),
  };
}

/**
 * Copy the built product (bin/, dist/src/, package.json; node_modules linked)
 * into dir, so that others rebuilding dist/ while the benchmark runs cannot
 * change the code under measurement halfway through. Returns the CLI's path.
 */
export function snapshotProduct(repoRoot: string, dir: string): string {
  mkdirSync(join(dir, 'dist'), { recursive: true });
  // Timestamps kept: the launcher (bin/snapclone) takes its front bundle only when it is newer than main.js.
  cpSync(join(repoRoot, 'bin'), join(dir, 'bin'), { recursive: true, preserveTimestamps: true });
  cpSync(join(repoRoot, 'dist/src'), join(dir, 'dist/src'), { recursive: true, preserveTimestamps: true });
  cpSync(join(repoRoot, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'));
  return join(dir, 'bin/snapclone.js');
}

export interface Server {
  url: string;
  proc: ChildProcess;
  dataDir: string;
  logPath: string;
}

export interface ServerOpts {
  /** The snapclone CLI (bin/snapclone.js). */
  bin: string;
  dataDir: string;
  logPath: string;
  /** Extra environment for the server. */
  env?: NodeJS.ProcessEnv;
  /** Every chunk the server writes to stdout or stderr, as it comes. */
  onOutput?: (text: string) => void;
}

/** `snapclone serve` on a free loopback port; resolves once GET /healthz answers 200. */
export async function startServer(o: ServerOpts): Promise<Server> {
  const port = await freePort();
  mkdirSync(o.dataDir, { recursive: true });
  const logStream = createWriteStream(o.logPath);
  const proc = spawn(NODE, [o.bin, 'serve', '--port', String(port), '--data-dir', o.dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...o.env },
  });
  children.add(proc);
  for (const s of [proc.stdout!, proc.stderr!]) {
    s.pipe(logStream);
    if (o.onOutput) s.setEncoding('utf8').on('data', (d: string) => o.onOutput!(d));
  }
  const url = `http://127.0.0.1:${port}`;
  let exited = false;
  proc.once('exit', () => (exited = true));
  await waitFor(
    'the snapclone server /healthz',
    async () => {
      if (exited) throw new Error('server exited');
      const r = await fetch(`${url}/healthz`);
      return r.status === 200;
    },
    30_000,
  ).catch((e: Error) => {
    throw new Error(`${e.message}${exited ? ` (server exited; see ${o.logPath})` : ''}`);
  });
  log(`snapclone server on ${url}, data in ${o.dataDir}, log in ${o.logPath}`);
  return { url, proc, dataDir: o.dataDir, logPath: o.logPath };
}

/** SIGTERM, then SIGKILL after 10 s; resolves when the process has exited. */
export async function stopProc(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const done = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await done;
  clearTimeout(t);
  children.delete(proc);
}

/** `git daemon` exporting repoPath's directory on a free loopback port; resolves once ls-remote works. */
export async function startDaemon(repoPath: string): Promise<{ url: string; proc: ChildProcess }> {
  const port = await freePort();
  const base = dirname(repoPath);
  const proc = spawn('git', ['daemon', '--reuseaddr', '--export-all', `--base-path=${base}`, '--listen=127.0.0.1', `--port=${port}`, '--informative-errors'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(proc);
  let err = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-2000)));
  const url = `git://127.0.0.1:${port}/${basename(repoPath)}`;
  await waitFor('git daemon', async () => (await timed(['git', 'ls-remote', '--heads', url], { timeoutMs: 10_000 })).code === 0, 20_000, 200).catch(
    (e: Error) => {
      throw new Error(`${e.message}: ${err.trim()}`);
    },
  );
  return { url, proc };
}

/** A finished run's report: `<base>.md` beside its JSON, `<kind>-latest.json|md` in `outDir`, the markdown on stdout. */
export function writeLatest(outDir: string, kind: string, base: string, results: unknown, md: string): void {
  writeFileSync(`${base}.md`, md);
  writeFileSync(join(outDir, `${kind}-latest.json`), `${JSON.stringify(results, null, 1)}\n`);
  writeFileSync(join(outDir, `${kind}-latest.md`), md);
  process.stdout.write(md);
  log(`wrote ${base}.json and ${base}.md`);
}
