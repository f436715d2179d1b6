/**
 * `npm run bench -- <upstream> [<upstream>...] [--runs N] [--out DIR]`
 *
 * Starts a snapclone server on a free loopback port with a fresh data dir,
 * registers each upstream (a bare repository path, or synthetic:100k) and
 * times its cold build, serves the same repository with `git daemon`, then
 * times, interleaved round-robin within each run and on each filesystem
 * (tmpfs and the normal disk):
 *
 *   git clone git://...            git clone --depth 1 git://...
 *   snapclone clone                snapclone clone --depth 1
 *   snapclone clone --mode files   zstd -dc tree.tar.zst | tar -x   (restore floor)
 *   zstd -dc clone.tar.zst | tar -x  (floor-clone: a whole `git clone`, .git + tree)
 *
 * and, with --peer, the peers' clients (peers.ts) in the same rounds:
 *   ripclone clone [--depth 1 | --mode files], beside its like-for-like baseline
 *   git clone --single-branch --no-tags (git-full-single); cachew git restore.
 * Every command's peak RSS (wait4 rusage via /usr/bin/time) is recorded too.
 *
 * Wall time is from spawning the process to its exit (hrtime); target
 * directories are fresh and removed outside the timed region. Then a serving
 * benchmark (serve.ts) per upstream, and CLI start-up. Results go to
 * <out>/results-<stamp>.json and .md (and latest.json / latest.md).
 *
 * Options:
 *   --runs N            timed runs per variant and filesystem (default 5)
 *   --runs-for NAME=N   override --runs for one upstream (repeatable), e.g. git=3
 *   --warmup N          untimed rounds before the timed ones (default 1)
 *   --out DIR           results and caches (default <repo>/.bench)
 *   --fs LIST           tmpfs,disk (default both)
 *   --tmpfs-dir DIR     default /dev/shm
 *   --disk-dir DIR      default <out>/scratch
 *   --only LIST         only these variants (git-full,git-full-single,git-depth1,snap-full,snap-depth1,
 *                       snap-files,floor,floor-clone); --peer adds its own variants to the list
 *   --peer KIND=DIR     race a peer built from its own source: ripclone=<dir with ripclone and
 *                       ripclone-server>, cachew=<dir with cachew and cachewd> (repeatable)
 *   --shape RATE        shaped network: the run re-executes in `unshare -n` with a tbf qdisc on
 *                       loopback (1gbit or 100mbit; shape.ts)
 *   --rtt MS            add MS of round-trip delay between every timed client and its server
 *                       (a delaying TCP proxy, delay-proxy.ts; netem is not available)
 *   --serve-seconds S   serving benchmark duration bound (default 8; 0 skips it)
 *   --serve-requests N  serving benchmark request bound (default 5000)
 *   --keep              keep the server data dir and scratch dirs
 *   --no-snapshot       run bin/snapclone.js in place instead of a private copy of the build
 *
 * `npm run bench -- --freshness <upstream>... [--runs N] [--ns 1,10,100]` runs
 * the freshness benchmark instead (freshness.ts: cold build, no-op re-sync,
 * re-sync after N commits, push-to-clonable); `--freshness --help` lists its options.
 *
 * `npm run bench -- --bootstrap <upstream>... [--runs N]` runs the worker bootstrap
 * benchmark instead (bootstrap.ts: a fresh worker's first build with and without the
 * mirror bootstrap from the store); `--bootstrap --help` lists its options.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { fmtMs, log, median, mountOf, must, rmrf, sizeOfFiles, stats, timed, timedPipe, type Timed } from './lib.js';
import { installCleanup, keepTempDirs, machine, NODE, snapshotProduct, startDaemon, startServer, stopProc, trackTemp, type Server } from './proc.js';
import { ensureSynthetic, parseSynthetic } from './synthetic.js';
import { serveBench } from './serve.js';
import { startupBench as startupSamples } from './startup.js';
import { renderReport } from './report.js';
import { parsePeer, PEER_VARIANTS, startPeer, type Cmd, type PeerRun, type PeerSpec } from './peers.js';
import { withRss } from './rusage.js';
import { viaDelay, type DelayProxy } from './delay-proxy.js';
import { checkShape, reexecShaped, shapeLoopback } from './shape.js';
import { DEFAULT_VARIANTS, VARIANTS, type CloneJson, type Derived, type FsInfo, type Results, type UpstreamResult, type Variant, type VariantResult } from './types.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The snapclone CLI under test; a private snapshot of the build once main() has made one. */
let BIN = join(REPO_ROOT, 'bin/snapclone.js');

installCleanup();

function requireTools(): void {
  for (const t of [['git', '--version'], ['zstd', '--version'], ['tar', '--version']]) {
    try {
      execFileSync(t[0]!, t.slice(1), { stdio: 'ignore' });
    } catch {
      throw new Error(`${t[0]} is needed for the benchmark (apt-get install -y ${t[0]})`);
    }
  }
}

// ---------------------------------------------------------------- one upstream

interface Ctx {
  server: Server;
  tmp: string;
  cacheDir: string;
  fss: FsInfo[];
  variants: Variant[];
  warmup: number;
  serveSeconds: number;
  serveRequests: number;
  peers: PeerSpec[];
  /** Round-trip delay added by a proxy in front of every server the timed clients use (0: none). */
  rttMs: number;
  /** Called after every timed sample, to save partial results. */
  save: () => void;
}

/** The one place the snapclone CLI is launched (the launcher may change: keep every spawn of it here). */
/**
 * A snapclone client command as a user runs it: the launcher `npm run build`
 * makes (bin/snapclone, on Bun), else the CLI on Node. The server always runs
 * `node bin/snapclone.js serve`.
 */
function snap(args: string[], server: string): string[] {
  const launcher = join(dirname(BIN), 'snapclone');
  return [...(existsSync(launcher) ? [launcher] : [NODE, BIN]), ...args, '--server', server];
}

/** A timed variant: one command, or `a | b` (the floors); prepare runs before the clock starts. */
type Job = { cmd: Cmd; prepare?: () => void } | { pipe: [string[], string[]]; prepare?: () => void };

/** Run a job with wall time and peak RSS (the larger side of a pipe). */
async function runJob(job: Job, rssDir: string): Promise<{ t: Timed; rss: number }> {
  job.prepare?.();
  if ('cmd' in job) {
    const p = withRss(job.cmd.argv, rssDir);
    const t = await timed(p.argv, { env: job.cmd.env, timeoutMs: 30 * 60_000 });
    return { t, rss: p.read() };
  }
  const a = withRss(job.pipe[0], rssDir);
  const b = withRss(job.pipe[1], rssDir);
  const t = await timedPipe(a.argv, b.argv, { timeoutMs: 30 * 60_000 });
  return { t, rss: Math.max(a.read(), b.read()) };
}

function parseCloneJson(t: Timed): CloneJson {
  const line = t.stdout.trim().split('\n').pop() ?? '';
  const j = JSON.parse(line) as CloneJson;
  if (typeof j.files !== 'number' || !j.timings) throw new Error(`unexpected clone --json output: ${line.slice(0, 200)}`);
  return j;
}

/** Work-tree files (and symlinks) of HEAD: index entries other than gitlinks, which are empty directories. */
function treeFileCount(repo: string): number {
  const out = execFileSync('git', ['--git-dir', repo, 'ls-tree', '-r', '-z', 'HEAD'], { maxBuffer: 1 << 30, encoding: 'latin1' });
  return out.split('\0').filter((l) => l && !l.startsWith('160000 ')).length;
}

/** A tar.zst of HEAD's work tree made from a real checkout (the restore floor), cached by commit. */
async function floorArchive(ctx: Ctx, repo: string, name: string, commit: string): Promise<{ path: string; bytes: number; buildMs: number }> {
  const path = join(ctx.cacheDir, `floor-${name}-${commit.slice(0, 12)}.tar.zst`);
  if (existsSync(path)) return { path, bytes: statSync(path).size, buildMs: NaN };
  const checkout = join(ctx.tmp, `checkout-${name}`);
  rmrf(checkout);
  const t0 = performance.now();
  await must(['git', 'clone', '-q', '--shared', repo, checkout]);
  const tmpPath = `${path}.tmp`;
  const r = await timedPipe(['tar', '-C', checkout, '--exclude=.git', '-cf', '-', '.'], ['zstd', '-3', '-T0', '-q', '-f', '-o', tmpPath]);
  if (r.code !== 0) throw new Error(`building the floor archive failed: ${r.stderr.trim()}`);
  renameSync(tmpPath, path);
  rmrf(checkout);
  return { path, bytes: statSync(path).size, buildMs: performance.now() - t0 };
}

/** A tar.zst of a whole `git clone` (.git + tree; objects copied, no alternates): the issue's full-clone floor, cached by commit. */
async function floorCloneArchive(ctx: Ctx, repo: string, name: string, commit: string): Promise<{ path: string; bytes: number; buildMs: number }> {
  const path = join(ctx.cacheDir, `floor-clone-${name}-${commit.slice(0, 12)}.tar.zst`);
  if (existsSync(path)) return { path, bytes: statSync(path).size, buildMs: NaN };
  const checkout = join(ctx.tmp, `clone-${name}`);
  rmrf(checkout);
  const t0 = performance.now();
  await must(['git', 'clone', '-q', '--no-local', repo, checkout], { timeoutMs: 60 * 60_000 });
  const tmpPath = `${path}.tmp`;
  const r = await timedPipe(['tar', '-C', checkout, '-cf', '-', '.'], ['zstd', '-3', '-T0', '-q', '-f', '-o', tmpPath]);
  if (r.code !== 0) throw new Error(`building the whole-clone floor archive failed: ${r.stderr.trim()}`);
  renameSync(tmpPath, path);
  rmrf(checkout);
  return { path, bytes: statSync(path).size, buildMs: performance.now() - t0 };
}

function emptyVariant(): VariantResult {
  return { samples: [], stats: stats([]), errors: [] };
}

async function benchUpstream(ctx: Ctx, runs: number, res: UpstreamResult): Promise<void> {
  const repo = res.path;
  const name = res.name;
  const serverUrl = ctx.server.url;

  // Cold build: `snapclone add` waits until every clone mode of the default branch is built.
  log(`${name}: snapclone add ${repo} (cold build)`);
  const add = await timed(snap(['add', repo, '--name', name, '--json'], serverUrl), { timeoutMs: 60 * 60_000 });
  if (add.code !== 0) throw new Error(`snapclone add ${repo} failed: ${add.stderr.trim()}`);
  res.coldBuildMs = add.ms;
  try {
    const j = JSON.parse(add.stdout.trim().split('\n').pop()!) as { job: UpstreamResult['buildJob'] };
    res.buildJob = j.job;
  } catch {
    res.buildJob = null;
  }
  log(`${name}: cold build ${fmtMs(add.ms)}`);
  const st = await must(snap(['status', name, '--json'], serverUrl));
  const status = JSON.parse(st.stdout) as { defaultBranch: string | null; refs: { ref: string; commit: string | null; sizes: UpstreamResult['sizes'] }[] };
  const ref = status.refs.find((r) => r.ref === `refs/heads/${status.defaultBranch}`) ?? status.refs[0];
  res.sizes = ref?.sizes ?? null;
  if (ref?.commit && ref.commit !== res.commit) res.verify['built commit is upstream HEAD'] = `server built ${ref.commit}, upstream HEAD is ${res.commit}`;
  else res.verify['built commit is upstream HEAD'] = 'ok';

  const floor = await floorArchive(ctx, repo, name, res.commit);
  res.floor = { bytes: floor.bytes, buildMs: floor.buildMs };
  let floorClone = { path: '', bytes: NaN, buildMs: NaN };
  if (ctx.variants.includes('floor-clone')) {
    floorClone = await floorCloneArchive(ctx, repo, name, res.commit);
    res.floorClone = { bytes: floorClone.bytes, buildMs: floorClone.buildMs };
  }

  const daemon = await startDaemon(repo);
  log(`${name}: git daemon at ${daemon.url}`);
  const peers: PeerRun[] = [];
  const proxies: DelayProxy[] = [];
  try {
    const via = async (url: string) => (ctx.rttMs > 0 ? viaDelay(url, ctx.rttMs, proxies) : url);
    const daemonUrl = await via(daemon.url);
    const snapUrl = await via(serverUrl);
    // Peers register and warm this upstream before the rounds; a failed peer's variants leave the rounds.
    const variants = [...ctx.variants];
    res.peers = {};
    for (const spec of ctx.peers) {
      log(`${name}: starting peer ${spec.kind} from ${spec.dir}`);
      const p = await startPeer(spec, repo, name, join(ctx.tmp, `peer-${spec.kind}-${name}`), join(ctx.tmp, `peer-scratch-${name}`), via);
      peers.push(p);
      res.peers[spec.kind] = { buildMs: p.buildMs, error: p.error };
    }
    const peerCmd = (v: Variant, t: string): Cmd => {
      const c = peers.find((p) => p.commands[v])?.commands[v];
      if (!c) throw new Error(`no peer runs ${v}`);
      return c(t);
    };
    const cmd = (argv: string[]): Job => ({ cmd: { argv } });
    // tar as root would chown every file and restore mtimes; snapclone does neither, so neither do the floors.
    const untar = (archive: string, t: string): Job => ({ pipe: [['zstd', '-dc', archive], ['tar', '-x', '-m', '--no-same-owner', '-C', t]], prepare: () => mkdirSync(t) });
    const commands: Record<Variant, (target: string) => Job> = {
      'git-full': (t) => cmd(['git', 'clone', '-q', daemonUrl, t]),
      'git-full-single': (t) => cmd(['git', 'clone', '-q', '--single-branch', '--no-tags', daemonUrl, t]),
      'git-depth1': (t) => cmd(['git', 'clone', '-q', '--depth', '1', daemonUrl, t]),
      'snap-full': (t) => cmd(snap(['clone', name, t, '--json'], snapUrl)),
      'snap-depth1': (t) => cmd(snap(['clone', name, t, '--depth', '1', '--json'], snapUrl)),
      'snap-files': (t) => cmd(snap(['clone', name, t, '--mode', 'files', '--json'], snapUrl)),
      'ripclone-full': (t) => ({ cmd: peerCmd('ripclone-full', t) }),
      'ripclone-depth1': (t) => ({ cmd: peerCmd('ripclone-depth1', t) }),
      'ripclone-files': (t) => ({ cmd: peerCmd('ripclone-files', t) }),
      'cachew-full': (t) => ({ cmd: peerCmd('cachew-full', t) }),
      floor: (t) => untar(floor.path, t),
      'floor-clone': (t) => untar(floorClone.path, t),
    };
    for (const fs of ctx.fss) {
      res.results[fs.label] = Object.fromEntries(ctx.variants.map((v) => [v, emptyVariant()])) as Record<Variant, VariantResult>;
      mkdirSync(join(fs.dir, name), { recursive: true });
    }
    for (const p of peers)
      if (p.error)
        for (const v of PEER_VARIANTS[p.kind]) {
          if (!variants.includes(v)) continue;
          variants.splice(variants.indexOf(v), 1);
          for (const fs of ctx.fss) res.results[fs.label]![v].errors.push(`fails: ${p.error}`);
        }
    let seq = 0;
    const checked = new Set<string>();
    // The floor archive unpacked once: the reference the first clone of each variant is compared with.
    const reference = join(ctx.fss[0]!.dir, name, 'reference');
    mkdirSync(reference);
    const unpacked = await timedPipe(['zstd', '-dc', floor.path], ['tar', '-x', '-C', reference]);
    if (unpacked.code !== 0) throw new Error(`unpacking the floor archive failed: ${unpacked.stderr.trim()}`);
    const one = async (fs: FsInfo, v: Variant, timedRun: boolean): Promise<void> => {
      const target = join(fs.dir, name, `${v}-${seq++}`);
      rmrf(target);
      const vr = res.results[fs.label]![v];
      let t: Timed;
      let rss = NaN;
      try {
        ({ t, rss } = await runJob(commands[v](target), ctx.tmp));
      } catch (e) {
        t = { ms: NaN, code: -1, signal: null, stdout: '', stderr: (e as Error).message };
      }
      try {
        if (t.code !== 0) {
          const msg = `exit ${t.code ?? t.signal}: ${t.stderr.trim().split('\n').slice(-3).join(' | ')}`;
          log(`${name} ${fs.label} ${v}: FAILED ${msg}`);
          if (timedRun) vr.errors.push(msg);
          return;
        }
        let cj: CloneJson | undefined;
        if (v.startsWith('snap-')) cj = parseCloneJson(t);
        if (!checked.has(v)) {
          checked.add(v);
          res.verify[v] = await check(v, target, res, cj, reference);
        }
        if (!timedRun) return;
        vr.samples.push(t.ms);
        (vr.peakRss ??= []).push(rss);
        if (cj) (vr.clone ??= []).push(cj);
        if (v === 'git-full' || v === 'git-depth1' || v === 'git-full-single') (vr.packBytes ??= []).push(sizeOfFiles(join(target, '.git/objects/pack'), '.pack'));
      } finally {
        rmrf(target);
      }
    };
    const rounds = ctx.warmup + runs;
    for (let r = 0; r < rounds; r++) {
      const timedRun = r >= ctx.warmup;
      const t0 = performance.now();
      for (const fs of ctx.fss) {
        // Round-robin over the variants, starting one further each round so no variant always goes first.
        const order = variants.map((_, i) => variants[(i + r) % variants.length]!);
        for (const v of order) await one(fs, v, timedRun);
      }
      for (const fs of ctx.fss) for (const v of ctx.variants) res.results[fs.label]![v].stats = stats(res.results[fs.label]![v].samples);
      ctx.save();
      log(`${name}: ${timedRun ? `run ${r - ctx.warmup + 1}/${runs}` : `warm-up ${r + 1}/${ctx.warmup}`} done in ${fmtMs(performance.now() - t0)}`);
    }
    const packs = (v: Variant) => median(ctx.fss.flatMap((f) => res.results[f.label]![v]?.packBytes ?? []));
    res.gitPackBytes = { full: packs('git-full'), depth1: packs('git-depth1') };
    for (const fs of ctx.fss) res.derived[fs.label] = derive(res.results[fs.label]!);
  } finally {
    for (const p of peers) await p.stop();
    for (const p of proxies) await p.stop();
    await stopProc(daemon.proc);
    for (const fs of ctx.fss) rmrf(join(fs.dir, name));
  }

  if (ctx.serveSeconds > 0) {
    log(`${name}: serving benchmark (8 clients, <= ${ctx.serveSeconds} s, <= ${ctx.serveRequests} requests)`);
    try {
      res.serve = await serveBench({ server: serverUrl, name, clients: 8, seconds: ctx.serveSeconds, maxRequests: ctx.serveRequests });
      log(`${name}: serving ${res.serve.gbPerSec.toFixed(2)} GB/s (${res.serve.requests} x ${res.serve.artifact.size} B)`);
    } catch (e) {
      res.serve = { error: (e as Error).message };
    }
  }
}

/** Sanity checks on the first good clone of each variant (outside timing). */
async function check(v: Variant, target: string, res: UpstreamResult, cj: CloneJson | undefined, reference: string): Promise<string> {
  try {
    // Same files, modes of symlinks and bytes as a real checkout (diff exits 1 on a difference).
    if (v !== 'floor' && v !== 'floor-clone') {
      const d = await timed(['diff', '-r', '-q', '--no-dereference', '--exclude=.git', reference, target], { timeoutMs: 10 * 60_000 });
      if (d.code !== 0) return `work tree differs from a git checkout: ${(d.stdout + d.stderr).trim().split('\n').slice(0, 3).join(' | ')}`;
    }
    if (v !== 'floor' && v !== 'floor-clone' && v !== 'snap-files' && v !== 'ripclone-files') {
      const head = (await must(['git', '-C', target, 'rev-parse', 'HEAD'])).stdout.trim();
      if (head !== res.commit) return `HEAD is ${head}, expected ${res.commit}`;
      const st = (await must(['git', '-C', target, 'status', '--porcelain'], { timeoutMs: 10 * 60_000 })).stdout;
      if (st.trim()) return `git status not clean: ${st.trim().split('\n').slice(0, 3).join(' | ')}`;
      if (v === 'snap-depth1' || v === 'git-depth1' || v === 'ripclone-depth1') {
        const n = (await must(['git', '-C', target, 'rev-list', '--count', 'HEAD'])).stdout.trim();
        if (n !== '1') return `depth 1 clone has ${n} commits`;
      }
    }
    if (cj && cj.files !== res.files) return `work tree ok, but clone --json reports ${cj.files} files, the tree has ${res.files}`;
    return 'ok';
  } catch (e) {
    return (e as Error).message.slice(0, 300);
  }
}

function derive(r: Record<Variant, VariantResult>): Derived {
  const med = (v: Variant) => r[v]?.stats.median ?? NaN;
  const writer = (v: Variant) =>
    median((r[v]?.clone ?? []).map((c) => (c.files / Math.max(1, (c.timings.written ?? NaN) - (c.timings.mkdir ?? NaN))) * 1000));
  const cloneMed = (v: Variant, k: 'bytesDownloaded' | 'peakRssBytes') => median((r[v]?.clone ?? []).map((c) => c[k]));
  return {
    ratioFull: med('git-full') / med('snap-full'),
    ratioDepth1: med('git-depth1') / med('snap-depth1'),
    ratioFilesVsFloor: med('snap-files') / med('floor'),
    writerFilesPerSecEditable: writer('snap-full'),
    writerFilesPerSecFiles: writer('snap-files'),
    peakRssFullBytes: cloneMed('snap-full', 'peakRssBytes'),
    bytesDownloaded: { full: cloneMed('snap-full', 'bytesDownloaded'), depth1: cloneMed('snap-depth1', 'bytesDownloaded'), files: cloneMed('snap-files', 'bytesDownloaded') },
  };
}

// ---------------------------------------------------------------- main

/** What runs the client: the launcher's shebang (Bun, or Node when no Bun was found at build time), else Node. */
function clientRuntime(): string {
  const launcher = join(dirname(BIN), 'snapclone');
  if (!existsSync(launcher)) return `node bin/snapclone.js (node ${process.version})`;
  return `bin/snapclone: ${readFileSync(launcher, 'utf8').split('\n')[0]!.replace(/^#!/, '')}`;
}

/** Spawn to the first request leaving, `snapclone clone` through the launcher (bench/startup.ts); 20 runs after 2 warm-ups. */
async function startupBench(): Promise<number[]> {
  const launcher = join(dirname(BIN), 'snapclone');
  const r = await startupSamples(existsSync(launcher) ? [launcher] : [NODE, BIN], { runs: 20, warmup: 2 });
  return r.firstRequestMs;
}

function stamp(): string {
  return new Date().toISOString().replace(/[:]/g, '').replace(/\..*$/, 'Z');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--freshness')) {
    // The freshness benchmark (freshness.ts) has its own options; it takes over the whole run.
    const { freshnessMain } = await import('./freshness.js');
    return freshnessMain(argv.filter((a) => a !== '--freshness'));
  }
  if (argv.includes('--bootstrap')) {
    const { bootstrapMain } = await import('./bootstrap.js');
    return bootstrapMain(argv.filter((a) => a !== '--bootstrap'));
  }
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      runs: { type: 'string' },
      'runs-for': { type: 'string', multiple: true },
      warmup: { type: 'string' },
      out: { type: 'string' },
      fs: { type: 'string' },
      'tmpfs-dir': { type: 'string' },
      'disk-dir': { type: 'string' },
      only: { type: 'string' },
      'serve-seconds': { type: 'string' },
      'serve-requests': { type: 'string' },
      keep: { type: 'boolean' },
      'no-snapshot': { type: 'boolean' },
      peer: { type: 'string', multiple: true },
      shape: { type: 'string' },
      'in-shape': { type: 'string' },
      rtt: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals.length === 0) {
    const doc = readFileSync(fileURLToPath(import.meta.url), 'utf8');
    process.stdout.write(`${/\/\*\*([\s\S]*?)\*\//.exec(doc)?.[1]?.replace(/^ \* ?/gm, '') ?? 'usage: npm run bench -- <upstream>... [--runs N] [--out DIR]'}\n`);
    if (!values.help) process.exitCode = 2;
    return;
  }
  if (values.shape && !values['in-shape']) {
    checkShape(values.shape);
    log(`shaped network ${values.shape}: re-running inside unshare -n`);
    process.exitCode = await reexecShaped(values.shape, argv);
    return;
  }
  const shape = values['in-shape'] ?? null;
  if (shape) {
    checkShape(shape);
    log(`shaped loopback: ${shapeLoopback(shape)}`);
  }
  keepTempDirs(values.keep === true);
  const peerSpecs = (values.peer ?? []).map(parsePeer);
  const runs = Number(values.runs ?? 5);
  const warmup = Number(values.warmup ?? 1);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  if (!Number.isInteger(warmup) || warmup < 0) throw new Error('--warmup must be a non-negative integer');
  const runsFor = new Map<string, number>();
  for (const s of values['runs-for'] ?? []) {
    const m = /^(.+)=(\d+)$/.exec(s);
    if (!m || Number(m[2]) < 1) throw new Error(`--runs-for wants NAME=N, got ${s}`);
    runsFor.set(m[1]!, Number(m[2]));
  }
  const variants = (values.only ? values.only.split(',') : [...DEFAULT_VARIANTS]) as Variant[];
  for (const v of variants) if (!VARIANTS.includes(v)) throw new Error(`unknown variant ${v} (one of ${VARIANTS.join(', ')})`);
  for (const p of peerSpecs) for (const v of PEER_VARIANTS[p.kind]) if (!variants.includes(v)) variants.push(v);
  // ripclone's full clone has one branch and no tags: race it against the git clone that does the same.
  if (peerSpecs.some((p) => p.kind === 'ripclone') && !variants.includes('git-full-single')) variants.push('git-full-single');
  requireTools();

  const outDir = resolve(values.out ?? join(REPO_ROOT, '.bench'));
  const cacheDir = join(outDir, 'cache');
  mkdirSync(cacheDir, { recursive: true });
  const fsLabels = (values.fs ?? 'tmpfs,disk').split(',');
  const fss: FsInfo[] = [];
  for (const label of fsLabels) {
    let base: string;
    if (label === 'tmpfs') base = values['tmpfs-dir'] ?? '/dev/shm';
    else if (label === 'disk') base = values['disk-dir'] ?? join(outDir, 'scratch');
    else throw new Error(`--fs takes tmpfs and/or disk, not ${label}`);
    mkdirSync(base, { recursive: true });
    const dir = mkdtempSync(join(base, 'snapclone-bench-'));
    trackTemp(dir);
    const m = mountOf(dir);
    fss.push({ label, dir, fsType: m.fsType, device: m.device });
  }
  const tmp = mkdtempSync(join(outDir, 'tmp-'));
  trackTemp(tmp);

  if (!values['no-snapshot']) BIN = snapshotProduct(REPO_ROOT, join(tmp, 'product'));
  const commit = execFileSync('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--', 'src', 'bin', 'package.json'], { encoding: 'utf8' }).trim() !== '';
  const results: Results = {
    format: 'snapclone.bench',
    version: 1,
    startedAt: new Date().toISOString(),
    finishedAt: null,
    commit,
    dirty,
    client: clientRuntime(),
    argv: process.argv.slice(2),
    shape,
    rttMs: Number(values.rtt ?? 0),
    machine: machine(),
    filesystems: fss,
    startup: { samples: [], stats: stats([]) },
    upstreams: [],
  };
  const base = join(outDir, `results-${stamp()}`);
  const save = () => {
    writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 1)}\n`);
  };
  log(`snapclone ${commit}${dirty ? ' (+uncommitted changes)' : ''}; results in ${base}.json`);
  log(`filesystems: ${fss.map((f) => `${f.label} ${f.dir} (${f.fsType})`).join(', ')}`);

  results.startup.samples = await startupBench();
  results.startup.stats = stats(results.startup.samples);
  log(`start-up: median ${fmtMs(results.startup.stats.median)}`);
  save();

  const server = await startServer({ bin: BIN, dataDir: join(tmp, 'data'), logPath: join(outDir, 'server.log') });
  const ctx: Ctx = {
    server,
    tmp,
    cacheDir,
    fss,
    variants,
    warmup,
    serveSeconds: Number(values['serve-seconds'] ?? 8),
    serveRequests: Number(values['serve-requests'] ?? 5000),
    peers: peerSpecs,
    rttMs: Number(values.rtt ?? 0),
    save,
  };
  let failed = 0;
  try {
    const names = new Set<string>();
    for (const spec of positionals) {
      let path: string;
      let name: string;
      const n = parseSynthetic(spec);
      if (n !== null) {
        path = await ensureSynthetic(spec, cacheDir);
        name = `synthetic-${spec.slice('synthetic:'.length)}`;
      } else {
        path = resolve(spec);
        name = basename(path).replace(/\.git$/, '') || 'repo';
      }
      while (names.has(name)) name = `${name}-2`;
      names.add(name);
      const upstreamCommit = (await must(['git', '--git-dir', path, 'rev-parse', 'HEAD'])).stdout.trim();
      const res: UpstreamResult = {
        spec,
        path,
        name,
        commit: upstreamCommit,
        files: treeFileCount(path),
        runs: runsFor.get(name) ?? runsFor.get(spec) ?? runs,
        warmup,
        coldBuildMs: NaN,
        buildJob: null,
        sizes: null,
        floor: { bytes: NaN, buildMs: NaN },
        gitPackBytes: { full: NaN, depth1: NaN },
        verify: {},
        results: {},
        derived: {},
        serve: null,
      };
      results.upstreams.push(res);
      log(`${name}: ${path}, ${res.files} files at ${upstreamCommit.slice(0, 12)}, ${res.runs} runs`);
      try {
        await benchUpstream(ctx, res.runs, res);
      } catch (e) {
        failed++;
        log(`${name}: FAILED: ${(e as Error).stack ?? String(e)}`);
        res.verify['benchmark'] = (e as Error).message;
      }
      save();
    }
  } finally {
    await stopProc(server.proc);
  }
  results.finishedAt = new Date().toISOString();
  save();
  const md = renderReport([results]);
  writeFileSync(`${base}.md`, md);
  writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify(results, null, 1)}\n`);
  writeFileSync(join(outDir, 'latest.md'), md);
  process.stdout.write(md);
  log(`wrote ${base}.json and ${base}.md`);
  if (failed) process.exitCode = 1;
}

main().catch((e: unknown) => {
  log(`error: ${(e as Error).stack ?? String(e)}`);
  process.exitCode = 1;
});
