/**
 * CLI start-up: from spawning `snapclone clone` to its first request leaving.
 *
 * A loopback TCP server stands in for the snapclone server; the time is taken
 * (hrtime) just before spawn() and when the first bytes of the first request
 * arrive. The server then drops the connection and the clone fails (exit 4,
 * unreachable), which ends the sample. Nothing of the clone's own work is in
 * the number: only runtime start-up, module loading and argument checks.
 *
 * `node dist/bench/startup.js [--runs N] -- CMD... [-- CMD...]` measures the
 * commands interleaved (e.g. `-- node bin/snapclone.js -- bin/snapclone`) and
 * prints each one's medians.
 */
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface StartupSamples {
  /** The command measured (before `clone ...`). */
  bin: string[];
  /** Spawn to the first bytes of the first request, per run, in ms. */
  firstRequestMs: number[];
  /** Spawn to the TCP connection being accepted, per run, in ms. */
  connectMs: number[];
  /** Spawn to exit, per run, in ms. */
  exitMs: number[];
  /** CPU time the child (all its threads) had used when its first request arrived, per run, in ms: less hostage to other load than wall time. */
  cpuMs: number[];
  median: number;
  min: number;
  max: number;
}

export interface StartupOpts {
  /** Timed runs (default 12). */
  runs?: number;
  /** Untimed runs first, so the page cache holds the runtime and the code (default 2). */
  warmup?: number;
  env?: NodeJS.ProcessEnv;
}

const ms = (from: bigint, to: bigint) => Number(to - from) / 1e6;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** CPU ns of every thread of pid so far (/proc/PID/task/TID/schedstat, first field); 0 where /proc has none. */
function cpuNs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    return ns;
  } catch {
    return 0;
  }
}

interface Arrival {
  connect: bigint;
  data: bigint;
  cpuNs: number;
}

/** Start-up samples of the CLI `bin` (e.g. [process.execPath, 'bin/snapclone.js']). */
export async function startupBench(bin: string[], opts: StartupOpts = {}): Promise<StartupSamples> {
  const runs = opts.runs ?? 12;
  const warmup = opts.warmup ?? 2;
  // The child whose first request is awaited; its CPU is read before the connection drops.
  let current: { pid: number | undefined; arrived: (a: Arrival) => void } | null = null;
  const srv = createServer((sock) => {
    const connect = process.hrtime.bigint();
    sock.once('data', () => {
      const data = process.hrtime.bigint();
      const c = current;
      current = null;
      c?.arrived({ connect, data, cpuNs: cpuNs(c.pid) });
      sock.destroy();
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  const dir = mkdtempSync(join(tmpdir(), 'snapclone-startup-'));
  const out: StartupSamples = { bin, firstRequestMs: [], connectMs: [], exitMs: [], cpuMs: [], median: NaN, min: NaN, max: NaN };
  try {
    for (let i = 0; i < warmup + runs; i++) {
      let arrived!: (a: Arrival) => void;
      const first = new Promise<Arrival>((r) => (arrived = r));
      const t0 = process.hrtime.bigint();
      const child = spawn(bin[0]!, [...bin.slice(1), 'clone', 'bench/startup', join(dir, 'c'), '--server', url, '--quiet'], { stdio: ['ignore', 'ignore', 'pipe'], env: opts.env ?? process.env });
      current = { pid: child.pid, arrived };
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<bigint>((resolve, reject) => {
        child.on('error', reject);
        child.on('exit', () => resolve(process.hrtime.bigint()));
      });
      const a = await Promise.race([first, exited.then(() => null)]);
      const tExit = await exited;
      if (a === null) throw new Error(`${bin.join(' ')} exited before any request: ${stderr.trim()}`);
      if (i < warmup) continue;
      out.firstRequestMs.push(ms(t0, a.data));
      out.connectMs.push(ms(t0, a.connect));
      out.exitMs.push(ms(t0, tExit));
      out.cpuMs.push(a.cpuNs / 1e6);
    }
  } finally {
    srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
  out.median = median(out.firstRequestMs);
  out.min = Math.min(...out.firstRequestMs);
  out.max = Math.max(...out.firstRequestMs);
  return out;
}

/** Several CLIs measured in the same minutes: one sample of each in turn, `rounds` times (after 2 untimed runs each). */
export async function compareStartup(bins: string[][], rounds: number, env?: NodeJS.ProcessEnv): Promise<StartupSamples[]> {
  const all = bins.map((bin) => ({ bin, firstRequestMs: [] as number[], connectMs: [] as number[], exitMs: [] as number[], cpuMs: [] as number[], median: NaN, min: NaN, max: NaN }));
  for (let r = 0; r < rounds; r++)
    for (const acc of all) {
      const one = await startupBench(acc.bin, { runs: 1, warmup: r === 0 ? 2 : 0, env });
      acc.firstRequestMs.push(...one.firstRequestMs);
      acc.connectMs.push(...one.connectMs);
      acc.exitMs.push(...one.exitMs);
      acc.cpuMs.push(...one.cpuMs);
    }
  for (const acc of all) {
    acc.median = median(acc.firstRequestMs);
    acc.min = Math.min(...acc.firstRequestMs);
    acc.max = Math.max(...acc.firstRequestMs);
  }
  return all;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  // node dist/bench/startup.js [--runs N] -- CMD1... [-- CMD2...]: the commands interleaved, N samples each.
  const argv = process.argv.slice(2);
  const sep = argv.indexOf('--');
  const flags = sep < 0 ? argv : argv.slice(0, sep);
  const cmds: string[][] = [];
  for (const a of sep < 0 ? [] : argv.slice(sep + 1)) {
    if (a === '--' || cmds.length === 0) cmds.push([]);
    if (a !== '--') cmds[cmds.length - 1]!.push(a);
  }
  const i = flags.indexOf('--runs');
  const runs = i < 0 ? 12 : Number(flags[i + 1]);
  if (cmds.length === 0 || cmds.some((c) => c.length === 0) || !(runs > 0)) {
    process.stderr.write('usage: node dist/bench/startup.js [--runs N] -- CMD... [-- CMD...]\n');
    process.exit(2);
  }
  const f = (x: number) => x.toFixed(1);
  for (const r of await compareStartup(cmds, runs))
    process.stdout.write(`${r.bin.join(' ')}: first request median ${f(r.median)} ms (min ${f(r.min)}, max ${f(r.max)}); connect ${f(median(r.connectMs))}; CPU to first request ${f(median(r.cpuMs))} ms; exit ${f(median(r.exitMs))} ms\n`);
}
