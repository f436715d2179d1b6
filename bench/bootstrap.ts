/**
 * Worker bootstrap benchmark: a fresh worker's first build, with and without the
 * mirror bootstrap from the store (issue 8: workers are ephemeral).
 *
 *   npm run bench -- --bootstrap <bare-repo>... [options]
 *   node dist/bench/bootstrap.js <bare-repo>... [options]
 *
 * For each upstream a private working upstream is made (a bare repository borrowing
 * the original's objects through objects/info/alternates, every branch and tag; the
 * original is never written). A server on a fresh data dir registers it and runs the
 * cold build (timed once: nothing to bootstrap from yet), which leaves the history
 * levels and a refs snapshot in the store and database. Then, per round and variant
 * (order alternating per round):
 *
 *   1. one new commit on the default branch of the working upstream (fast-import);
 *   2. the worker's disk is emptied: mirrors/ and tmp/ removed, only the store
 *      (artifacts/) and the database stay, which is all a worker shares with others;
 *   3. a new server process (SNAPCLONE_MIRROR_BOOTSTRAP=1 or 0) syncs: timed from the
 *      request to the job's end, with its phases (server debug log), the bytes the
 *      bootstrap downloaded and the bytes the fetch brought (mirror pack files).
 *
 * Medians over --runs rounds, and the load average. A table goes to stdout; JSON and
 * markdown to <out>/bootstrap-<time>.json|md and <out>/bootstrap-latest.json|md.
 *
 * Options:
 *   --runs N        rounds (default 2; a plain first build of git/git takes minutes)
 *   --out DIR       default <repo>/.bench
 *   --keep          keep working upstreams and data dirs
 *   --no-snapshot   run bin/snapclone.js in place instead of a private copy of the build
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { fmtBytes, fmtMs, log, median, must, rmrf, sleep } from './lib.js';
import { installCleanup, keepTempDirs, machine, snapshotProduct, startServer, stopProc, trackTemp, writeLatest } from './proc.js';
import { phasesFromLog, type Phase } from './freshness.js';
import type { Machine } from './types.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const LONG = 60 * 60_000;

type Variant = 'bootstrap' | 'plain';

interface Sample {
  variant: Variant;
  round: number;
  state: string;
  error: string | null;
  /** Sync request to the job seen finished (ms). */
  wallMs: number;
  /** The job's startedAt..finishedAt (ms). */
  jobMs: number;
  phases: Phase[];
  /** Whether the server logged a bootstrap (and its own figures), or why it fell back. */
  bootstrapped: boolean;
  bootstrapNote: string | null;
  /** Pack and idx bytes in the mirror after the sync, and how many of them came from the store. */
  mirrorPackBytes: number;
  bootstrapBytes: number;
  /** Pack bytes the upstream fetch brought (mirror packs minus the bootstrapped ones). */
  fetchedBytes: number;
  loadBefore: number[];
  loadAfter: number[];
}

interface UpstreamBootstrap {
  path: string;
  name: string;
  refs: number;
  cold: { ms: number; state: string; error: string | null; phases: Phase[] };
  samples: Sample[];
  summary: Record<Variant, { runs: number; wallMs: number; jobMs: number; fetchedBytes: number; bootstrapBytes: number; phases: Phase[] }>;
  notes: string[];
}

interface BootstrapResults {
  format: 'snapclone.bench.bootstrap';
  version: 1;
  startedAt: string;
  finishedAt: string | null;
  commit: string;
  dirty: boolean;
  argv: string[];
  machine: Machine;
  runs: number;
  load: { start: number[]; end: number[] | null };
  upstreams: UpstreamBootstrap[];
}

async function git(args: string[], input?: string): Promise<string> {
  return (await must(['git', ...args], { timeoutMs: LONG, ...(input === undefined ? {} : { input }) })).stdout;
}

async function http(method: string, url: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(url, { method, body: body === undefined ? undefined : JSON.stringify(body), headers: body === undefined ? {} : { 'content-type': 'application/json' } });
  const text = await r.text();
  try {
    return { status: r.status, json: JSON.parse(text) };
  } catch {
    return { status: r.status, json: { text } };
  }
}

async function waitJob(url: string, id: number): Promise<{ state: string; error: string | null; jobMs: number }> {
  const deadline = Date.now() + LONG;
  for (;;) {
    const j = (await http('GET', `${url}/v1/jobs/${id}`)).json;
    if (j.state === 'succeeded' || j.state === 'failed') return { state: j.state, error: j.error ?? null, jobMs: j.startedAt && j.finishedAt ? j.finishedAt - j.startedAt : NaN };
    if (Date.now() > deadline) throw new Error(`job ${id} did not finish`);
    await sleep(50);
  }
}

function packBytes(mirror: string): number {
  const dir = join(mirror, 'objects', 'pack');
  let sum = 0;
  for (const f of readdirSync(dir)) if (f.endsWith('.pack') || f.endsWith('.idx')) sum += statSync(join(dir, f)).size;
  return sum;
}

/** A bare working upstream borrowing `src`'s objects, with all its branches and tags. */
async function makeWorking(src: string, dir: string): Promise<{ branch: string; refs: number }> {
  const branch = (await git(['--git-dir', src, 'symbolic-ref', '--short', 'HEAD'])).trim();
  await git(['init', '--bare', '--quiet', dir]);
  writeFileSync(join(dir, 'objects/info/alternates'), `${resolve(src, 'objects')}\n`);
  const lines = (await git(['--git-dir', src, 'for-each-ref', '--format=%(objectname) %(refname)', 'refs/heads', 'refs/tags'])).trim().split('\n').filter(Boolean);
  await git(['--git-dir', dir, 'update-ref', '--stdin'], lines.map((l) => `create ${l.split(' ')[1]} ${l.split(' ')[0]}\n`).join(''));
  await git(['--git-dir', dir, 'symbolic-ref', 'HEAD', `refs/heads/${branch}`]);
  return { branch, refs: lines.length };
}

/** One new commit on `branch` changing one file (what a push brings). */
async function pushOne(dir: string, branch: string, tag: string): Promise<void> {
  const parent = (await git(['--git-dir', dir, 'rev-parse', `refs/heads/${branch}`])).trim();
  const content = `bootstrap benchmark ${tag}\n`;
  const msg = `bench: ${tag}\n`;
  const when = Math.floor(Date.now() / 1000);
  const stream =
    `commit refs/heads/${branch}\ncommitter Bench <bench@example.invalid> ${when} +0000\n` +
    `data ${Buffer.byteLength(msg)}\n${msg}from ${parent}\n` +
    `M 100644 inline bench-bootstrap.txt\ndata ${Buffer.byteLength(content)}\n${content}\n`;
  await git(['--git-dir', dir, 'fast-import', '--quiet'], stream);
}

interface Ctx {
  bin: string;
  dataDir: string;
  logDir: string;
  name: string;
}

/** A server process on the shared data dir; returns the job outcome and the log text of the run. */
async function syncOnce(ctx: Ctx, variant: Variant, label: string, trigger: (url: string) => Promise<number>): Promise<{ wallMs: number; state: string; error: string | null; jobMs: number; phases: Phase[]; log: string }> {
  let text = '';
  const server = await startServer({
    bin: ctx.bin,
    dataDir: ctx.dataDir,
    logPath: join(ctx.logDir, `${ctx.name}-${label}.log`),
    env: { SNAPCLONE_POLL_SECONDS: '0', SNAPCLONE_LOG: 'debug', SNAPCLONE_MIRROR_BOOTSTRAP: variant === 'bootstrap' ? '1' : '0' },
    onOutput: (d) => (text += d),
  });
  try {
    const t0 = performance.now();
    const id = await trigger(server.url);
    const j = await waitJob(server.url, id);
    const wallMs = performance.now() - t0;
    return { wallMs, ...j, phases: phasesFromLog(text, id), log: text };
  } finally {
    await stopProc(server.proc);
  }
}

function summarise(samples: Sample[]): UpstreamBootstrap['summary'] {
  const out = {} as UpstreamBootstrap['summary'];
  for (const v of ['bootstrap', 'plain'] as const) {
    const ok = samples.filter((s) => s.variant === v && s.state === 'succeeded');
    const names = [...new Set(ok.flatMap((s) => s.phases.map((p) => p.phase.replace(/ \([0-9a-f]{12}\)$/, ''))))];
    out[v] = {
      runs: ok.length,
      wallMs: median(ok.map((s) => s.wallMs)),
      jobMs: median(ok.map((s) => s.jobMs)),
      fetchedBytes: median(ok.map((s) => s.fetchedBytes)),
      bootstrapBytes: median(ok.map((s) => s.bootstrapBytes)),
      phases: names.map((phase) => ({
        phase,
        ms: median(ok.map((s) => s.phases.filter((p) => p.phase.replace(/ \([0-9a-f]{12}\)$/, '') === phase).reduce((a, p) => a + p.ms, 0))),
      })),
    };
  }
  return out;
}

export function renderBootstrap(res: BootstrapResults): string {
  const lines = [
    `# Worker bootstrap benchmark`,
    '',
    `snapclone ${res.commit}${res.dirty ? ' (+uncommitted)' : ''}, ${res.machine.nproc} CPUs (${res.machine.cpuModel}), ${res.machine.git}; ${res.runs} round(s); load average ${res.load.start.map((x) => x.toFixed(2)).join(' ')} at start, ${res.load.end?.map((x) => x.toFixed(2)).join(' ') ?? '?'} at end.`,
    '',
  ];
  for (const u of res.upstreams) {
    lines.push(`## ${u.name} (${u.refs} refs)`, '', `Cold build (first ever, nothing to bootstrap from): ${fmtMs(u.cold.ms)} (${u.cold.state}).`, '');
    lines.push('| fresh worker, first build after one push | runs | wall (median) | job | bootstrap download | fetched from upstream |', '|---|---:|---:|---:|---:|---:|');
    for (const v of ['bootstrap', 'plain'] as const) {
      const s = u.summary[v];
      lines.push(`| ${v === 'bootstrap' ? 'with bootstrap' : 'without (plain fetch)'} | ${s.runs} | ${fmtMs(s.wallMs)} | ${fmtMs(s.jobMs)} | ${fmtBytes(s.bootstrapBytes)} | ${fmtBytes(s.fetchedBytes)} |`);
    }
    lines.push('');
    for (const v of ['bootstrap', 'plain'] as const) lines.push(`Phases ${v} (median ms): ${u.summary[v].phases.map((p) => `${p.phase} ${Math.round(p.ms)}`).join(', ') || '(none logged)'}`, '');
    lines.push('Samples:', '');
    for (const s of u.samples)
      lines.push(`- round ${s.round + 1} ${s.variant}: ${s.state}, wall ${fmtMs(s.wallMs)}, fetched ${fmtBytes(s.fetchedBytes)}, load ${s.loadBefore[0]?.toFixed(2)} -> ${s.loadAfter[0]?.toFixed(2)}${s.bootstrapNote ? ` (${s.bootstrapNote})` : ''}${s.error ? `: ${s.error}` : ''}`);
    for (const n of u.notes) lines.push(`- note: ${n}`);
    lines.push('');
  }
  return lines.join('\n');
}

function stamp(): string {
  return new Date().toISOString().replace(/[:]/g, '').replace(/\..*$/, 'Z');
}

export async function bootstrapMain(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { runs: { type: 'string' }, out: { type: 'string' }, keep: { type: 'boolean' }, 'no-snapshot': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help || positionals.length === 0) {
    const doc = readFileSync(fileURLToPath(import.meta.url), 'utf8');
    process.stdout.write(`${/\/\*\*([\s\S]*?)\*\//.exec(doc)?.[1]?.replace(/^ \* ?/gm, '') ?? ''}\n`);
    if (!values.help) process.exitCode = 2;
    return;
  }
  installCleanup();
  keepTempDirs(values.keep === true);
  const runs = Number(values.runs ?? 2);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  const outDir = resolve(values.out ?? join(REPO_ROOT, '.bench'));
  mkdirSync(outDir, { recursive: true });
  const tmp = mkdtempSync(join(outDir, 'tmp-bootstrap-'));
  trackTemp(tmp);
  const bin = values['no-snapshot'] ? join(REPO_ROOT, 'bin/snapclone.js') : snapshotProduct(REPO_ROOT, join(tmp, 'product'));
  const gitOut = (args: string[]) => {
    try {
      return execFileSync('git', ['-C', REPO_ROOT, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return null;
    }
  };
  const results: BootstrapResults = {
    format: 'snapclone.bench.bootstrap',
    version: 1,
    startedAt: new Date().toISOString(),
    finishedAt: null,
    commit: gitOut(['rev-parse', '--short', 'HEAD']) ?? '(not a git checkout)',
    dirty: (gitOut(['status', '--porcelain', '--', 'src', 'bin', 'package.json']) ?? '') !== '',
    argv,
    machine: machine(),
    runs,
    load: { start: loadavg(), end: null },
    upstreams: [],
  };
  const base = join(outDir, `bootstrap-${stamp()}`);
  const save = () => writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 1)}\n`);
  const logDir = join(outDir, 'bootstrap-logs');
  mkdirSync(logDir, { recursive: true });
  let failed = 0;
  for (const spec of positionals) {
    const path = resolve(spec);
    const name = basename(path).replace(/\.git$/, '') || 'repo';
    const working = join(tmp, 'upstreams', `${name}.git`);
    const { branch, refs } = await makeWorking(path, working);
    const dataDir = join(tmp, `data-${name}`);
    const ctx: Ctx = { bin, dataDir, logDir, name };
    log(`${name}: working upstream ${working} (${refs} refs); cold build`);
    const cold = await syncOnce(ctx, 'plain', 'cold', async (url) => {
      const r = await http('POST', `${url}/v1/repos`, { url: working, name });
      if (r.status !== 201) throw new Error(`registering ${name} answered ${r.status}: ${JSON.stringify(r.json)}`);
      return r.json.job.id as number;
    });
    const u: UpstreamBootstrap = { path, name, refs, cold: { ms: cold.wallMs, state: cold.state, error: cold.error, phases: cold.phases }, samples: [], summary: summarise([]), notes: [] };
    results.upstreams.push(u);
    save();
    log(`${name}: cold build ${cold.state} in ${fmtMs(cold.wallMs)}`);
    if (cold.state !== 'succeeded') {
      failed++;
      continue;
    }
    for (let round = 0; round < runs; round++) {
      const order: Variant[] = round % 2 === 0 ? ['bootstrap', 'plain'] : ['plain', 'bootstrap'];
      for (const variant of order) {
        try {
          await pushOne(working, branch, `${round}-${variant}`);
          // The fresh worker: nothing on its disk but what it shares (the store and the database).
          rmrf(join(dataDir, 'mirrors'));
          rmrf(join(dataDir, 'tmp'));
          const loadBefore = loadavg();
          const r = await syncOnce(ctx, variant, `r${round}-${variant}`, async (url) => {
            const s = await http('POST', `${url}/v1/repos/${encodeURIComponent(name)}/sync`, {});
            if (s.status !== 202) throw new Error(`sync answered ${s.status}: ${JSON.stringify(s.json)}`);
            return s.json.job.id as number;
          });
          const done = /mirror bootstrapped from the store in (\d+) ms: (\d+) history pack\(s\), (\d+) bytes, (\d+) refs/.exec(r.log);
          const fellBack = /could not bootstrap the mirror from the store \((.*)\); fetching everything/.exec(r.log);
          const mirror = join(dataDir, 'mirrors', `${encodeURIComponent(name)}.git`);
          const mirrorPackBytes = packBytes(mirror);
          const bootstrapBytes = done ? Number(done[3]) : 0;
          const sample: Sample = {
            variant,
            round,
            state: r.state,
            error: r.error,
            wallMs: r.wallMs,
            jobMs: r.jobMs,
            phases: r.phases,
            bootstrapped: done !== null,
            bootstrapNote: done ? `bootstrap ${done[1]} ms, ${done[2]} packs, ${done[4]} refs` : fellBack ? `fell back: ${fellBack[1]}` : null,
            mirrorPackBytes,
            bootstrapBytes,
            fetchedBytes: mirrorPackBytes - bootstrapBytes,
            loadBefore,
            loadAfter: loadavg(),
          };
          if (variant === 'bootstrap' && !done) u.notes.push(`round ${round + 1}: the bootstrap did not happen${fellBack ? `: ${fellBack[1]}` : ''}`);
          u.samples.push(sample);
          log(`${name} round ${round + 1} ${variant}: ${r.state} in ${fmtMs(r.wallMs)}, fetched ${fmtBytes(sample.fetchedBytes)}${sample.bootstrapNote ? ` (${sample.bootstrapNote})` : ''}`);
          if (r.state !== 'succeeded') failed++;
        } catch (e) {
          failed++;
          log(`${name} round ${round + 1} ${variant}: FAILED: ${(e as Error).stack ?? String(e)}`);
          u.notes.push(`round ${round + 1} ${variant} failed: ${(e as Error).message.slice(0, 300)}`);
        }
        u.summary = summarise(u.samples);
        save();
      }
    }
  }
  results.finishedAt = new Date().toISOString();
  results.load.end = loadavg();
  save();
  writeLatest(outDir, 'bootstrap', base, results, renderBootstrap(results));
  if (failed) process.exitCode = 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  bootstrapMain(process.argv.slice(2)).catch((e: unknown) => {
    log(`error: ${(e as Error).stack ?? String(e)}`);
    process.exitCode = 1;
  });
}
