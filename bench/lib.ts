/**
 * Small helpers for the benchmark harness: timed child processes, statistics,
 * free ports, filesystem facts. No dependencies beyond Node itself.
 */
import { spawn, type SpawnOptions } from 'node:child_process';
import { createServer } from 'node:net';
import { readFileSync, readdirSync, lstatSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export interface Timed {
  /** Wall time from spawning the process to its exit, in ms (hrtime). */
  ms: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOpts {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill the process (SIGKILL) after this many ms. */
  timeoutMs?: number;
  /** Send this to stdin, then close it. */
  input?: string | Buffer;
}

const MAX_CAPTURE = 4 << 20;

/** Spawn argv[0] with the rest as arguments; resolve when it exits, with wall time. Never rejects on a non-zero exit. */
export function timed(argv: string[], opts: RunOpts = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const so: SpawnOptions = { cwd: opts.cwd, env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] };
    const t0 = process.hrtime.bigint();
    const child = spawn(argv[0]!, argv.slice(1), so);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < MAX_CAPTURE) stdout += d;
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < MAX_CAPTURE) stderr += d;
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs) timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.once('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    // 'exit' is the process end; 'close' also waits for its stdio to drain. Time to 'exit'.
    let ms = 0;
    child.once('exit', () => {
      ms = Number(process.hrtime.bigint() - t0) / 1e6;
    });
    child.once('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ ms, code, signal, stdout, stderr });
    });
  });
}

/** Like timed(), but throws with the command's stderr when it fails. */
export async function must(argv: string[], opts: RunOpts = {}): Promise<Timed> {
  const r = await timed(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (${r.code ?? r.signal}): ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`);
  return r;
}

/**
 * `a | b` as two processes joined by a pipe (no shell). Wall time from
 * spawning the first to the exit of the last.
 */
export function timedPipe(a: string[], b: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const pa = spawn(a[0]!, a.slice(1), { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const pb = spawn(b[0]!, b.slice(1), { cwd: opts.cwd, stdio: [pa.stdout!, 'ignore', 'pipe'] });
    let stderr = '';
    for (const p of [pa, pb]) p.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs) timer = setTimeout(() => (pa.kill('SIGKILL'), pb.kill('SIGKILL')), opts.timeoutMs);
    let left = 2;
    let code: number | null = 0;
    let ms = 0;
    const onExit = (c: number | null) => {
      if (c !== 0) code = c;
      if (--left === 0) {
        ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (timer) clearTimeout(timer);
        resolve({ ms, code, signal: null, stdout: '', stderr });
      }
    };
    pa.once('error', reject);
    pb.once('error', reject);
    pa.once('exit', onExit);
    pb.once('exit', onExit);
  });
}

export interface Stats {
  n: number;
  median: number;
  min: number;
  max: number;
  mean: number;
}

export function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return { n: 0, median: NaN, min: NaN, max: NaN, mean: NaN };
  const median = n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  return { n, median, min: s[0]!, max: s[n - 1]!, mean: s.reduce((a, b) => a + b, 0) / n };
}

export function median(xs: number[]): number {
  return stats(xs).median;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll until fn() is true, or throw after timeoutMs. */
export async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await fn()) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** The mount a path lives on: longest mount-point prefix in /proc/mounts. */
export function mountOf(path: string): { device: string; mountPoint: string; fsType: string } {
  let best = { device: '?', mountPoint: '', fsType: '?' };
  try {
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [device, mp, fsType] = line.split(' ');
      if (!device || !mp || !fsType) continue;
      const m = mp.replace(/\\040/g, ' ');
      if ((path === m || path.startsWith(m.endsWith('/') ? m : `${m}/`)) && m.length >= best.mountPoint.length) best = { device, mountPoint: m, fsType };
    }
  } catch {
    /* not Linux */
  }
  return best;
}

/** Total size in bytes of files directly in dir whose names end with suffix. */
export function sizeOfFiles(dir: string, suffix: string): number {
  let total = 0;
  try {
    for (const f of readdirSync(dir)) if (f.endsWith(suffix)) total += lstatSync(join(dir, f)).size;
  } catch {
    return 0;
  }
  return total;
}

export function rmrf(path: string): void {
  rmSync(path, { recursive: true, force: true, maxRetries: 3 });
}

export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return 'n/a';
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
}

export { formatBytes as fmtBytes } from '../src/util/format.js';

export function fmtRatio(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(x >= 10 ? 1 : 2)}x` : 'n/a';
}

export function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}
