/**
 * Freshness benchmark: what a sync costs and how soon a push is clonable.
 *
 *   npm run bench -- --freshness <bare-repo>... [options]
 *   node dist/bench/freshness.js <bare-repo>... [options]
 *
 * For each upstream a private working upstream is made (a bare repository
 * borrowing the original's objects through objects/info/alternates; the
 * original is never written): the default branch, plus every branch and tag
 * already merged into HEAD~<largest N>, so only the default branch moves.
 * Then, for each N and each round, on a fresh server and data dir:
 *
 *   1. default branch := HEAD~N (first-parent), register, time the cold build;
 *   2. no-op re-sync (POST /v1/repos/NAME/sync): time, bytes written to the
 *      data dir (sum of file sizes before/after, the SQLite db and WAL included;
 *      and the server's write_bytes from /proc/PID/io), log bytes, new artifacts;
 *   3. default branch := HEAD, then a signed GitHub push webhook
 *      (POST /v1/hooks/github; falls back to POST .../sync when the route is not
 *      there, and says so); poll GET .../resolve?mode=shallow and ?mode=full every
 *      --poll-ms until each answers the new commit (push-to-clonable), and time
 *      the job to its end (re-sync wall time, phases from the server's debug log),
 *      new artifact bytes as a fraction of the cold build's.
 *
 * Medians over --runs rounds. A table goes to stdout; JSON and markdown to
 * <out>/freshness-<time>.json|md and <out>/freshness-latest.json|md.
 *
 * Options:
 *   --runs N        rounds per N (default 3)
 *   --ns LIST       commit counts (default 1,10,100)
 *   --poll-ms MS    resolve and job polling interval (default 20)
 *   --out DIR       default <repo>/.bench
 *   --keep          keep working upstreams and data dirs
 *   --no-snapshot   run bin/snapclone.js in place instead of a private copy of the build
 *   --product DIR   measure the built checkout in DIR (its bin/, dist/src/) instead of this one
 *   --report F.json...  print the report of earlier results files instead of running
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { fmtBytes, fmtMs, log, median, must, rmrf, sleep } from './lib.js';
import { installCleanup, keepTempDirs, machine, snapshotProduct, startServer, stopProc, trackTemp, writeLatest, type Server } from './proc.js';
import type { Machine } from './types.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const HOOK_SECRET_ENV = 'SNAPCLONE_GITHUB_WEBHOOK_SECRET';
const LONG = 60 * 60_000;

// ---------------------------------------------------------------- result shapes

export interface Phase {
  phase: string;
  ms: number;
}

interface JobOutcome {
  id: number | null;
  state: string;
  error: string | null;
  /** From the trigger to the poll that saw the job finished (ms). */
  wallMs: number;
  /** The job's own startedAt..finishedAt (server clock, ms). */
  jobMs: number;
  /** Phases with durations, from the server's debug log (or from polling when the log has none). */
  phases: Phase[];
}

interface DirDelta {
  /** Sum of file sizes after minus before, whole data dir (artifacts, mirror, db, wal...). */
  sizeDelta: number;
  /** The same, only snapclone.db* (database, WAL, shared memory). */
  dbSizeDelta: number;
  /** write_bytes of the server process (and its reaped git children) from /proc/PID/io; null if unreadable. */
  procWriteBytes: number | null;
  /** Bytes of server log lines at info level and above written meanwhile (debug lines left out). */
  logBytes: number;
  newArtifacts: number;
  newArtifactBytes: number;
  /** The files that grew or appeared the most (path relative to the data dir, bytes). */
  top: [string, number][];
  /** Files created, changed (size or mtime) or removed meanwhile, at most 30 (paths relative to the data dir). */
  touched: string[];
}

interface Round {
  n: number;
  round: number;
  base: string;
  head: string;
  /** Commits in base..head (all parents). */
  newCommits: number;
  cold: JobOutcome & { artifacts: number; artifactBytes: number };
  noop: JobOutcome & DirDelta;
  resync: JobOutcome & DirDelta & { fractionOfCold: number };
  push: {
    trigger: 'webhook' | 'sync';
    note: string | null;
    /** Trigger sent to the first resolve answering the new commit. */
    shallowMs: number;
    fullMs: number;
    /** The `mode` field resolve answered with (null: the server ignores the mode param). */
    shallowMode: string | null;
    fullMode: string | null;
    /** Whether a resolve meanwhile answered the old commit with `newer` set. */
    newerSeen: boolean;
  };
  errors: string[];
}

interface Summary {
  n: number;
  rounds: number;
  newCommits: number;
  coldMs: number;
  coldArtifactBytes: number;
  noopMs: number;
  noopSizeDelta: number;
  noopProcWriteBytes: number;
  noopLogBytes: number;
  noopNewArtifacts: number;
  noopNewArtifactBytes: number;
  resyncMs: number;
  resyncJobMs: number;
  resyncNewArtifactBytes: number;
  resyncFraction: number;
  pushShallowMs: number;
  pushFullMs: number;
  trigger: string;
  phases: Phase[];
  /** [min, max] over rounds of the wall times above. */
  spread: Record<'coldMs' | 'noopMs' | 'resyncMs' | 'pushShallowMs' | 'pushFullMs', [number, number]>;
}

interface UpstreamFreshness {
  spec: string;
  path: string;
  name: string;
  branch: string;
  head: string;
  working: string;
  refsKept: number;
  rounds: Round[];
  summary: Summary[];
  notes: string[];
}

export interface FreshnessResults {
  format: 'snapclone.bench.freshness';
  version: 1;
  startedAt: string;
  finishedAt: string | null;
  commit: string;
  dirty: boolean;
  argv: string[];
  machine: Machine;
  runs: number;
  ns: number[];
  pollMs: number;
  /** os.loadavg() at the start and the end: the machine is shared. */
  load: { start: number[]; end: number[] | null };
  upstreams: UpstreamFreshness[];
}

// ---------------------------------------------------------------- small helpers

async function git(args: string[]): Promise<string> {
  return (await must(['git', ...args], { timeoutMs: LONG })).stdout;
}

async function http(method: string, url: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(url, { method, body, headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers } });
  const text = await r.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = { text };
  }
  return { status: r.status, json };
}

interface FileFact {
  size: number;
  mtimeMs: number;
}

/** Every regular file under dir with its size and mtime (symlinks not followed). */
function fileFacts(dir: string): Map<string, FileFact> {
  const out = new Map<string, FileFact>();
  const walk = (d: string, rel: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return; // removed meanwhile (tmp dirs)
    }
    for (const name of names) {
      const p = join(d, name);
      const r = rel ? `${rel}/${name}` : name;
      try {
        const st = lstatSync(p);
        if (st.isDirectory()) walk(p, r);
        else if (st.isFile()) out.set(r, { size: st.size, mtimeMs: st.mtimeMs });
      } catch {
        /* removed meanwhile */
      }
    }
  };
  walk(dir, '');
  return out;
}

const ARTIFACT = /^artifacts\/[0-9a-f]{2}\/[0-9a-f]{64}$/;

function artifactTotals(files: Map<string, FileFact>): { count: number; bytes: number } {
  let count = 0;
  let bytes = 0;
  for (const [p, f] of files)
    if (ARTIFACT.test(p)) {
      count++;
      bytes += f.size;
    }
  return { count, bytes };
}

function procWriteBytes(pid: number | undefined): number | null {
  try {
    const m = /^write_bytes:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** The server's output so far, kept in memory to read phases and count log bytes. */
class ServerLog {
  text = '';
  append = (d: string) => {
    this.text += d;
  };
  /** Bytes of lines at info level or above in text[from..]. */
  infoBytes(from: number): number {
    let n = 0;
    for (const line of this.text.slice(from).split('\n')) if (line && !/^\S+ debug /.test(line)) n += Buffer.byteLength(line) + 1;
    return n;
  }
  phases(id: number): Phase[] {
    return phasesFromLog(this.text, id);
  }
}

/**
 * Phases of job `id` from the server's `job <id>: <phase>` debug lines, each
 * lasting until the next line of that job (the last until `succeeded in ...`).
 */
export function phasesFromLog(text: string, id: number): Phase[] {
  const marks: { at: number; phase: string }[] = [];
  const re = new RegExp(`^(\\S+) debug job ${id}: (.*)$`, 'gm');
  for (const m of text.matchAll(re)) marks.push({ at: Date.parse(m[1]!), phase: m[2]! });
  const out: Phase[] = [];
  for (let i = 0; i + 1 < marks.length; i++) out.push({ phase: marks[i]!.phase, ms: marks[i + 1]!.at - marks[i]!.at });
  return out;
}

class DataDirProbe {
  private before = new Map<string, FileFact>();
  private write0: number | null = null;
  private log0 = 0;
  constructor(
    private readonly server: Server,
    private readonly slog: ServerLog,
  ) {}
  start(): void {
    this.before = fileFacts(this.server.dataDir);
    this.write0 = procWriteBytes(this.server.proc.pid);
    this.log0 = this.slog.text.length;
  }
  finish(): DirDelta {
    const after = fileFacts(this.server.dataDir);
    const w1 = procWriteBytes(this.server.proc.pid);
    const sum = (m: Map<string, FileFact>, pred: (p: string) => boolean) => [...m].reduce((a, [p, f]) => (pred(p) ? a + f.size : a), 0);
    const isDb = (p: string) => p.startsWith('snapclone.db');
    let newArtifacts = 0;
    let newArtifactBytes = 0;
    const grew: [string, number][] = [];
    const touched: string[] = [];
    for (const [p, f] of after) {
      const was = this.before.get(p);
      if (was === undefined && ARTIFACT.test(p)) {
        newArtifacts++;
        newArtifactBytes += f.size;
      }
      if (f.size > (was?.size ?? 0)) grew.push([p, f.size - (was?.size ?? 0)]);
      if (!was || was.size !== f.size || was.mtimeMs !== f.mtimeMs) touched.push(p);
    }
    for (const p of this.before.keys()) if (!after.has(p)) touched.push(`${p} (removed)`);
    grew.sort((a, b) => b[1] - a[1]);
    return {
      sizeDelta: sum(after, () => true) - sum(this.before, () => true),
      dbSizeDelta: sum(after, isDb) - sum(this.before, isDb),
      procWriteBytes: this.write0 === null || w1 === null ? null : w1 - this.write0,
      logBytes: this.slog.infoBytes(this.log0),
      newArtifacts,
      newArtifactBytes,
      top: grew.slice(0, 5),
      touched: touched.slice(0, 30),
    };
  }
}

/** Poll GET /v1/jobs/<id> until it finishes; phases from the log, else from the polls. */
async function watchJob(server: Server, slog: ServerLog, id: number, t0: number, pollMs: number): Promise<JobOutcome> {
  const seen: { at: number; phase: string }[] = [];
  const deadline = Date.now() + LONG;
  for (;;) {
    const r = await http('GET', `${server.url}/v1/jobs/${id}`);
    const j = r.json as { state?: string; phase?: string; error?: string | null; startedAt?: number | null; finishedAt?: number | null };
    const now = performance.now();
    if (j.phase && seen.at(-1)?.phase !== j.phase) seen.push({ at: now, phase: j.phase });
    if (j.state === 'succeeded' || j.state === 'failed') {
      let phases = slog.phases(id);
      if (phases.length === 0) phases = seen.slice(0, -1).map((s, i) => ({ phase: s.phase, ms: seen[i + 1]!.at - s.at }));
      return {
        id,
        state: j.state,
        error: j.error ?? null,
        wallMs: now - t0,
        jobMs: j.startedAt && j.finishedAt ? j.finishedAt - j.startedAt : NaN,
        phases,
      };
    }
    if (Date.now() > deadline) throw new Error(`job ${id} did not finish`);
    await sleep(pollMs);
  }
}

function jobIdOf(body: Record<string, unknown>): number | null {
  const job = body.job as { id?: unknown } | undefined;
  if (job && typeof job.id === 'number') return job.id;
  const jobs = body.jobs as { id?: unknown }[] | undefined;
  if (Array.isArray(jobs) && typeof jobs[0]?.id === 'number') return jobs[0].id as number;
  return null;
}

/** The newest job of the repository with an id above `after` (a webhook's answer may not name its job). */
async function findJob(server: Server, name: string, after: number, pollMs: number): Promise<number> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await http('GET', `${server.url}/v1/repos/${encodeURIComponent(name)}`);
    const ids = ((r.json.jobs as { id: number }[] | undefined) ?? []).map((j) => j.id).filter((id) => id > after);
    if (ids.length) return Math.min(...ids);
    if (Date.now() > deadline) throw new Error(`no sync job appeared for ${name} within 30 s of the trigger`);
    await sleep(pollMs);
  }
}

export function signGithub(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

// ---------------------------------------------------------------- the working upstream

interface Working {
  path: string;
  branch: string;
  /** commits[k] = HEAD~k on the first-parent line. */
  commits: string[];
  refsKept: number;
}

async function makeWorking(src: string, dir: string, maxN: number): Promise<Working> {
  const branch = (await git(['--git-dir', src, 'symbolic-ref', '--short', 'HEAD'])).trim();
  const commits = (await git(['--git-dir', src, 'rev-list', '--first-parent', `--max-count=${maxN + 1}`, 'HEAD'])).trim().split('\n');
  const base = commits[Math.min(maxN, commits.length - 1)]!;
  await git(['init', '--bare', '--quiet', dir]);
  writeFileSync(join(dir, 'objects/info/alternates'), `${resolve(src, 'objects')}\n`);
  // Only refs already merged into the oldest base: moving the default branch is then the only change upstream.
  const lines = (await git(['--git-dir', src, 'for-each-ref', `--merged=${base}`, '--format=%(objectname) %(refname)', 'refs/heads', 'refs/tags'])).trim().split('\n').filter(Boolean);
  const kept = lines.map((l) => l.split(' ')).filter(([, ref]) => ref !== `refs/heads/${branch}`);
  await must(['git', '--git-dir', dir, 'update-ref', '--stdin'], { input: kept.map(([oid, ref]) => `create ${ref} ${oid}\n`).join('') });
  await git(['--git-dir', dir, 'update-ref', `refs/heads/${branch}`, commits[0]!]);
  await git(['--git-dir', dir, 'symbolic-ref', 'HEAD', `refs/heads/${branch}`]);
  return { path: dir, branch, commits, refsKept: kept.length + 1 };
}

// ---------------------------------------------------------------- one round

interface RoundCtx {
  bin: string;
  tmp: string;
  outDir: string;
  name: string;
  working: Working;
  pollMs: number;
  keep: boolean;
  /** Set once the webhook route answered 404 "no route": later rounds go straight to sync. */
  hookMissing: { note: string } | null;
}

async function oneRound(ctx: RoundCtx, n: number, round: number): Promise<Round> {
  const { working: w, name, pollMs } = ctx;
  const base = w.commits[n]!;
  const head = w.commits[0]!;
  const newCommits = Number((await git(['--git-dir', w.path, 'rev-list', '--count', `${base}..${head}`])).trim());
  await git(['--git-dir', w.path, 'update-ref', `refs/heads/${w.branch}`, base]);
  const secret = randomBytes(16).toString('hex');
  const slog = new ServerLog();
  const serverDir = mkdtempSync(join(ctx.tmp, `srv-${name}-n${n}-r${round}-`));
  mkdirSync(join(ctx.outDir, 'freshness-logs'), { recursive: true });
  const server = await startServer({
    bin: ctx.bin,
    dataDir: join(serverDir, 'data'),
    logPath: join(ctx.outDir, 'freshness-logs', `${name}-n${n}-r${round}.log`),
    // Polling off: only the benchmark's triggers start syncs. Debug: job phase lines with timestamps.
    env: { [HOOK_SECRET_ENV]: secret, SNAPCLONE_POLL_SECONDS: '0', SNAPCLONE_LOG: 'debug' },
    onOutput: slog.append,
  });
  const api = (p: string) => `${server.url}/v1/repos/${encodeURIComponent(name)}${p}`;
  const errors: string[] = [];
  const probe = new DataDirProbe(server, slog);
  try {
    // 1. Cold build at HEAD~N.
    let t0 = performance.now();
    const add = await http('POST', `${server.url}/v1/repos`, JSON.stringify({ url: w.path, name }));
    const addId = jobIdOf(add.json);
    if (add.status >= 300 || addId === null) throw new Error(`POST /v1/repos: ${add.status} ${JSON.stringify(add.json).slice(0, 300)}`);
    const coldJob = await watchJob(server, slog, addId, t0, pollMs);
    if (coldJob.state !== 'succeeded') throw new Error(`cold build failed: ${coldJob.error}`);
    const coldArt = artifactTotals(fileFacts(server.dataDir));
    const r0 = await http('GET', api('/resolve'));
    if (r0.json.commit !== base) errors.push(`after the cold build resolve answers ${String(r0.json.commit)}, expected ${base}`);
    log(`${name} N=${n} round ${round + 1}: cold build ${fmtMs(coldJob.wallMs)}, ${coldArt.count} artifacts, ${fmtBytes(coldArt.bytes)}`);

    // 2. No-op re-sync.
    probe.start();
    t0 = performance.now();
    const s1 = await http('POST', api('/sync'), '{}');
    const s1Id = jobIdOf(s1.json);
    if (s1.status >= 300 || s1Id === null) throw new Error(`POST sync: ${s1.status} ${JSON.stringify(s1.json).slice(0, 300)}`);
    const noopJob = await watchJob(server, slog, s1Id, t0, pollMs);
    await sleep(200); // let WAL writes and log lines of the job's end land
    const noop = { ...noopJob, ...probe.finish() };
    if (noopJob.state !== 'succeeded') errors.push(`no-op sync failed: ${noopJob.error}`);
    log(`${name} N=${n}: no-op re-sync ${fmtMs(noop.wallMs)}, data dir ${noop.sizeDelta} B, write_bytes ${noop.procWriteBytes}, ${noop.newArtifacts} new artifacts`);

    // 3. Move the branch to HEAD, then trigger and watch resolve per mode.
    await git(['--git-dir', w.path, 'update-ref', `refs/heads/${w.branch}`, head]);
    probe.start();
    let trigger: 'webhook' | 'sync' = 'webhook';
    let note: string | null = null;
    let jobId: number | null = null;
    t0 = performance.now();
    if (ctx.hookMissing) {
      trigger = 'sync';
      note = ctx.hookMissing.note;
    } else {
      const body = JSON.stringify({
        ref: `refs/heads/${w.branch}`,
        before: base,
        after: head,
        created: false,
        deleted: false,
        forced: false,
        repository: { name, full_name: `bench/${name}`, clone_url: w.path, default_branch: w.branch },
        pusher: { name: 'bench' },
        head_commit: { id: head },
      });
      const h = await http('POST', `${server.url}/v1/hooks/github`, body, {
        'x-github-event': 'push',
        'x-github-delivery': randomUUID(),
        'x-hub-signature-256': signGithub(secret, body),
      });
      const matched = h.json.matched;
      if (h.status >= 200 && h.status < 300 && !(Array.isArray(matched) && matched.length === 0)) jobId = jobIdOf(h.json);
      else if (h.status >= 200 && h.status < 300) {
        note = `webhook matched no registered repository (${JSON.stringify(h.json).slice(0, 200)}): timed from POST .../sync instead`;
        errors.push(note);
        trigger = 'sync';
      } else {
        const why = `${h.status} ${String(h.json.error ?? h.json.text ?? '').slice(0, 200)}`;
        note = h.status === 404 && /no route/.test(why) ? 'webhook route not available: timed from POST .../sync instead' : `webhook refused (${why}): timed from POST .../sync instead`;
        if (h.status === 404 && /no route/.test(why)) ctx.hookMissing = { note };
        else errors.push(note);
        trigger = 'sync';
      }
    }
    if (trigger === 'sync') {
      t0 = performance.now();
      const s2 = await http('POST', api('/sync'), '{}');
      jobId = jobIdOf(s2.json);
      if (s2.status >= 300 || jobId === null) throw new Error(`POST sync: ${s2.status} ${JSON.stringify(s2.json).slice(0, 300)}`);
    }
    const watched = (async () => watchJob(server, slog, jobId ?? (await findJob(server, name, s1Id, pollMs)), t0, pollMs))();
    const got: Record<'shallow' | 'full', { ms: number; mode: string | null }> = { shallow: { ms: NaN, mode: null }, full: { ms: NaN, mode: null } };
    let newerSeen = false;
    let jobDoneAt: number | null = null;
    void watched.then(() => (jobDoneAt = performance.now())).catch(() => (jobDoneAt = performance.now()));
    for (;;) {
      for (const mode of ['shallow', 'full'] as const) {
        if (!Number.isNaN(got[mode].ms)) continue;
        const r = await http('GET', api(`/resolve?mode=${mode}`));
        if (r.status === 200 && r.json.commit === head) got[mode] = { ms: performance.now() - t0, mode: typeof r.json.mode === 'string' ? r.json.mode : null };
        else if (r.status === 200 && r.json.newer) newerSeen = true;
      }
      if (!Number.isNaN(got.shallow.ms) && !Number.isNaN(got.full.ms)) break;
      // The job is over and resolve still answers the old commit: give it 5 s, then give up.
      if (jobDoneAt !== null && performance.now() - jobDoneAt > 5000) {
        errors.push(`resolve did not answer ${head} within 5 s of the job's end (shallow ${fmtMs(got.shallow.ms)}, full ${fmtMs(got.full.ms)})`);
        break;
      }
      await sleep(pollMs);
    }
    const resyncJob = await watched;
    await sleep(200);
    const delta = probe.finish();
    if (resyncJob.state !== 'succeeded') errors.push(`re-sync failed: ${resyncJob.error}`);
    const resync = { ...resyncJob, ...delta, fractionOfCold: delta.newArtifactBytes / coldArt.bytes };
    log(
      `${name} N=${n}: re-sync ${fmtMs(resync.wallMs)} (${trigger}), new artifacts ${fmtBytes(delta.newArtifactBytes)} = ${(resync.fractionOfCold * 100).toFixed(1)}% of cold; clonable: depth 1 ${fmtMs(got.shallow.ms)}, full ${fmtMs(got.full.ms)}`,
    );
    return {
      n,
      round,
      base,
      head,
      newCommits,
      cold: { ...coldJob, artifacts: coldArt.count, artifactBytes: coldArt.bytes },
      noop,
      resync,
      push: { trigger, note, shallowMs: got.shallow.ms, fullMs: got.full.ms, shallowMode: got.shallow.mode, fullMode: got.full.mode, newerSeen },
      errors,
    };
  } finally {
    await stopProc(server.proc);
    if (!ctx.keep) rmrf(serverDir);
  }
}

// ---------------------------------------------------------------- summary and report

/** Phase durations summed per name as logged (the same names in every round of one N), then the median over rounds. */
function medianPhases(rounds: Round[]): Phase[] {
  const names: string[] = [];
  const per = rounds.map((r) => {
    const m = new Map<string, number>();
    for (const p of r.resync.phases) {
      if (!names.includes(p.phase)) names.push(p.phase);
      m.set(p.phase, (m.get(p.phase) ?? 0) + p.ms);
    }
    return m;
  });
  return names.map((phase) => ({ phase, ms: median(per.map((m) => m.get(phase) ?? 0)) }));
}

function summarise(rounds: Round[], ns: number[]): Summary[] {
  const out: Summary[] = [];
  for (const n of ns) {
    const rs = rounds.filter((r) => r.n === n);
    if (rs.length === 0) continue;
    const vals = (f: (r: Round) => number | null) => rs.map((r) => f(r) ?? NaN).filter((x) => !Number.isNaN(x));
    const med = (f: (r: Round) => number | null) => median(vals(f));
    const range = (f: (r: Round) => number): [number, number] => [Math.min(...vals(f)), Math.max(...vals(f))];
    out.push({
      n,
      rounds: rs.length,
      newCommits: rs[0]!.newCommits,
      coldMs: med((r) => r.cold.wallMs),
      coldArtifactBytes: med((r) => r.cold.artifactBytes),
      noopMs: med((r) => r.noop.wallMs),
      noopSizeDelta: med((r) => r.noop.sizeDelta),
      noopProcWriteBytes: med((r) => r.noop.procWriteBytes),
      noopLogBytes: med((r) => r.noop.logBytes),
      noopNewArtifacts: med((r) => r.noop.newArtifacts),
      noopNewArtifactBytes: med((r) => r.noop.newArtifactBytes),
      resyncMs: med((r) => r.resync.wallMs),
      resyncJobMs: med((r) => r.resync.jobMs),
      resyncNewArtifactBytes: med((r) => r.resync.newArtifactBytes),
      resyncFraction: med((r) => r.resync.fractionOfCold),
      pushShallowMs: med((r) => r.push.shallowMs),
      pushFullMs: med((r) => r.push.fullMs),
      trigger: [...new Set(rs.map((r) => r.push.trigger))].join('+'),
      phases: medianPhases(rs),
      spread: {
        coldMs: range((r) => r.cold.wallMs),
        noopMs: range((r) => r.noop.wallMs),
        resyncMs: range((r) => r.resync.wallMs),
        pushShallowMs: range((r) => r.push.shallowMs),
        pushFullMs: range((r) => r.push.fullMs),
      },
    });
  }
  return out;
}

const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(x < 0.1 ? 2 : 1)}%` : 'n/a');
const bytes = (x: number) => (Number.isFinite(x) ? (Math.abs(x) < 1024 ? `${x} B` : fmtBytes(x)) : 'n/a');

export function renderFreshness(res: FreshnessResults): string {
  const m = res.machine;
  const lines: string[] = [
    `# Freshness benchmark`,
    '',
    `snapclone ${res.commit}${res.dirty ? ' (+uncommitted changes)' : ''}, ${res.startedAt}; ${res.runs} round(s) per N, polling every ${res.pollMs} ms.`,
    `Machine: ${m.nproc} CPUs (${m.cpuModel}), ${fmtBytes(m.memTotalBytes)}, Linux ${m.kernel}, Node ${m.node}, ${m.git}; load average ${res.load.start.map((x) => x.toFixed(1)).join(' ')} at the start${res.load.end ? `, ${res.load.end.map((x) => x.toFixed(1)).join(' ')} at the end` : ''}.`,
    '',
  ];
  for (const u of res.upstreams) {
    lines.push(`## ${u.name} (${u.spec})`, '');
    lines.push(`Working upstream: default branch \`${u.branch}\` (HEAD ${u.head.slice(0, 12)}) plus ${u.refsKept - 1} branches and tags merged into its oldest base.`, '');
    for (const note of u.notes) lines.push(`- ${note}`);
    if (u.notes.length) lines.push('');
    lines.push(
      '| N (commits) | cold build | cold artifacts | no-op re-sync | no-op: data dir size delta / write_bytes / log | no-op new artifacts | re-sync after N (job) | new artifact bytes (of cold) | push to clonable, depth 1 | push to clonable, full | trigger |',
      '|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|',
    );
    for (const s of u.summary)
      lines.push(
        `| ${s.n} (${s.newCommits}) | ${fmtMs(s.coldMs)} | ${bytes(s.coldArtifactBytes)} | ${fmtMs(s.noopMs)} | ${bytes(s.noopSizeDelta)} / ${bytes(s.noopProcWriteBytes)} / ${bytes(s.noopLogBytes)} | ${s.noopNewArtifacts} (${bytes(s.noopNewArtifactBytes)}) | ${fmtMs(s.resyncMs)} (${fmtMs(s.resyncJobMs)}) | ${bytes(s.resyncNewArtifactBytes)} (${pct(s.resyncFraction)}) | ${fmtMs(s.pushShallowMs)} | ${fmtMs(s.pushFullMs)} | ${s.trigger} |`,
      );
    lines.push('', 'Spread (min - max over rounds):', '');
    for (const s of u.summary) {
      const sp = (k: keyof Summary['spread']) => `${fmtMs(s.spread[k][0])} - ${fmtMs(s.spread[k][1])}`;
      lines.push(`- N=${s.n}: cold ${sp('coldMs')}; no-op ${sp('noopMs')}; re-sync ${sp('resyncMs')}; clonable depth 1 ${sp('pushShallowMs')}, full ${sp('pushFullMs')}`);
    }
    lines.push('', 'Re-sync phases (median ms per phase over rounds, from the server log):', '');
    for (const s of u.summary) lines.push(`- N=${s.n}: ${s.phases.map((p) => `${p.phase} ${Math.round(p.ms)}`).join('; ') || 'n/a'}`);
    const errs = u.rounds.flatMap((r) => r.errors.map((e) => `N=${r.n} round ${r.round + 1}: ${e}`));
    if (errs.length) lines.push('', 'Problems:', '', ...errs.map((e) => `- ${e}`));
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------- main

function stamp(): string {
  return new Date().toISOString().replace(/[:]/g, '').replace(/\..*$/, 'Z');
}

export async function freshnessMain(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      runs: { type: 'string' },
      ns: { type: 'string' },
      'poll-ms': { type: 'string' },
      out: { type: 'string' },
      keep: { type: 'boolean' },
      'no-snapshot': { type: 'boolean' },
      product: { type: 'string' },
      report: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.report) {
    // Re-render results files (summaries recomputed from their rounds).
    for (const f of positionals) {
      const res = JSON.parse(readFileSync(f, 'utf8')) as FreshnessResults;
      for (const u of res.upstreams) u.summary = summarise(u.rounds, res.ns);
      process.stdout.write(renderFreshness(res));
    }
    return;
  }
  if (values.help || positionals.length === 0) {
    const doc = readFileSync(fileURLToPath(import.meta.url), 'utf8');
    process.stdout.write(`${/\/\*\*([\s\S]*?)\*\//.exec(doc)?.[1]?.replace(/^ \* ?/gm, '') ?? ''}\n`);
    if (!values.help) process.exitCode = 2;
    return;
  }
  installCleanup();
  keepTempDirs(values.keep === true);
  const runs = Number(values.runs ?? 3);
  const pollMs = Number(values['poll-ms'] ?? 20);
  const ns = (values.ns ?? '1,10,100').split(',').map(Number);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  if (ns.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('--ns wants positive integers, e.g. 1,10,100');
  if (!(pollMs > 0)) throw new Error('--poll-ms must be positive');
  const outDir = resolve(values.out ?? join(REPO_ROOT, '.bench'));
  mkdirSync(outDir, { recursive: true });
  const tmp = mkdtempSync(join(outDir, 'tmp-freshness-'));
  trackTemp(tmp);
  const productRoot = values.product ? resolve(values.product) : REPO_ROOT;
  const bin = values['no-snapshot'] ? join(productRoot, 'bin/snapclone.js') : snapshotProduct(productRoot, join(tmp, 'product'));
  const gitOut = (args: string[]) => {
    try {
      return execFileSync('git', ['-C', productRoot, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return null; // not a git checkout (an exported tree)
    }
  };
  const commit = gitOut(['rev-parse', '--short', 'HEAD']) ?? `${productRoot} (not a git checkout)`;
  const dirty = (gitOut(['status', '--porcelain', '--', 'src', 'bin', 'package.json']) ?? '') !== '';
  const results: FreshnessResults = {
    format: 'snapclone.bench.freshness',
    version: 1,
    startedAt: new Date().toISOString(),
    finishedAt: null,
    commit,
    dirty,
    argv,
    machine: machine(),
    runs,
    ns,
    pollMs,
    load: { start: loadavg(), end: null },
    upstreams: [],
  };
  const base = join(outDir, `freshness-${stamp()}`);
  const save = () => writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 1)}\n`);
  log(`freshness: snapclone ${commit}${dirty ? ' (+uncommitted changes)' : ''}; results in ${base}.json`);
  let failed = 0;
  for (const spec of positionals) {
    const path = resolve(spec);
    const name = basename(path).replace(/\.git$/, '') || 'repo';
    const maxN = Math.max(...ns);
    const working = await makeWorking(path, join(tmp, 'upstreams', `${name}.git`), maxN);
    const u: UpstreamFreshness = {
      spec,
      path,
      name,
      branch: working.branch,
      head: working.commits[0]!,
      working: working.path,
      refsKept: working.refsKept,
      rounds: [],
      summary: [],
      notes: [],
    };
    results.upstreams.push(u);
    const usable = ns.filter((n) => n < working.commits.length);
    for (const n of ns) if (!usable.includes(n)) u.notes.push(`N=${n} skipped: the first-parent history has only ${working.commits.length} commits`);
    log(`${name}: working upstream ${working.path}, ${working.refsKept} refs, HEAD ${u.head.slice(0, 12)}`);
    const ctx: RoundCtx = { bin, tmp, outDir, name, working, pollMs, keep: values.keep === true, hookMissing: null };
    for (let round = 0; round < runs; round++)
      for (const n of usable) {
        try {
          u.rounds.push(await oneRound(ctx, n, round));
        } catch (e) {
          failed++;
          log(`${name} N=${n} round ${round + 1}: FAILED: ${(e as Error).stack ?? String(e)}`);
          u.notes.push(`N=${n} round ${round + 1} failed: ${(e as Error).message.slice(0, 300)}`);
        }
        u.summary = summarise(u.rounds, usable);
        save();
      }
    if (ctx.hookMissing) u.notes.push(ctx.hookMissing.note);
    const modes = u.rounds.map((r) => r.push.shallowMode);
    if (modes.length && modes.every((x) => x === null)) u.notes.push('resolve ignores the mode parameter (no `mode` in its answer): depth 1 and full both wait for the one full build');
  }
  results.finishedAt = new Date().toISOString();
  results.load.end = loadavg();
  save();
  writeLatest(outDir, 'freshness', base, results, renderFreshness(results));
  if (failed) process.exitCode = 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  freshnessMain(process.argv.slice(2)).catch((e: unknown) => {
    log(`error: ${(e as Error).stack ?? String(e)}`);
    process.exitCode = 1;
  });
}
