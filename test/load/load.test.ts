/**
 * Load: 200 concurrent clones of mixed modes (full, --depth 1, files) against one server
 * (embedded defaults: SQLite, local store), then against two servers sharing PostgreSQL and
 * S3 (SeaweedFS) with a worker building. Loopback only; servers are real processes with
 * SNAPCLONE_RATE_LIMIT=0 (200 clients from one address would otherwise be a burst of one).
 *
 * The clones run in this process through the client library (dist/src/client), all 200 at
 * once: 200 CLI processes at once do not fit this 2-CPU machine (each Node start is ~40 MB
 * and ~0.1 s of CPU), and what is under load is the server. The client verifies every byte
 * by SHA-256; each clone is also checked against `git clone` cheaply (HEAD, the hash of
 * `git ls-files -s`, an empty `git status --porcelain` for editable clones; the blob ids of the
 * tree for files mode), and one clone per mode per server fully with compareClones.
 * Throughput (clones/s, MiB/s) and p50/p99 latency per mode are printed and written to
 * $SNAPCLONE_LOAD_REPORT when set. No assertion on speed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { clone, type CloneMode } from '../../src/client/clone.js';
import { compareClones } from '../support/compare.js';
import { makeMediumRepo, type MediumRepo } from '../support/fixtures.js';
import { git, gitText, hermeticEnv, tmpDir, removeTmpDir } from '../support/git.js';
import { startPostgres, postgresSkipReason, type PostgresServer } from '../support/postgres.js';
import { startSeaweed, WEED_MISSING, type Seaweed } from '../support/seaweed.js';
import { runCli, spawnServe, type ServeProcess } from '../serve/process-helpers.js';

const CLONES = Number(process.env.SNAPCLONE_LOAD_CLONES) || 200;
const MODES = ['full', 'depth1', 'files'] as const;
type LoadMode = (typeof MODES)[number];

// This process clones like a user with the reference clones' hermetic git (reflogs name its identity).
Object.assign(process.env, hermeticEnv());

let work: string;
let upstream: MediumRepo;
const refs = new Map<LoadMode, string>();
const procs: ServeProcess[] = [];
let pg: PostgresServer | null = null;
let weed: Seaweed | null = null;
const report: string[] = [];

const quiet = { warn: () => {}, notice: () => {} };

before(() => {
  work = tmpDir('snapclone-load');
  upstream = makeMediumRepo(work, { commits: 60 });
  for (const [mode, flags] of [['full', []], ['depth1', ['--depth', '1']], ['files', ['--depth', '1']]] as const) {
    const dir = join(work, `ref-${mode}`);
    git(['clone', '--quiet', ...flags, `file://${upstream.path}`, dir], { cwd: work });
    refs.set(mode, dir);
  }
});

after(async () => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGTERM');
  await Promise.all(procs.map((p) => p.exited));
  await pg?.stop();
  await weed?.stop();
  const out = process.env.SNAPCLONE_LOAD_REPORT;
  if (out && report.length) writeFileSync(out, report.join('\n') + '\n');
  removeTmpDir(work);
});

/** What a cheap check compares: per editable clone its HEAD and index; per files clone its tree's blob ids. */
interface Expect {
  head: string;
  index: string;
  tree: string;
}

function indexDigest(dir: string): string {
  return createHash('sha256').update(git(['ls-files', '-s'], { cwd: dir })).digest('hex');
}

/** `git ls-tree -r` lines (mode, blob id, path) of a plain directory, the way git would hash it. */
function treeListing(root: string): string {
  const lines: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const p = rel ? `${rel}/${name}` : name;
      if (p === '.git') continue;
      const st = lstatSync(join(root, p));
      if (st.isDirectory()) walk(p);
      else {
        const data = st.isSymbolicLink() ? Buffer.from(readlinkSync(join(root, p))) : readFileSync(join(root, p));
        const oid = createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
        lines.push(`${st.isSymbolicLink() ? '120000' : st.mode & 0o111 ? '100755' : '100644'} blob ${oid}\t${p}`);
      }
    }
  };
  walk('');
  return lines.sort((a, b) => (a.split('\t')[1]! < b.split('\t')[1]! ? -1 : 1)).join('\n');
}

function expected(): Map<LoadMode, Expect> {
  const m = new Map<LoadMode, Expect>();
  for (const mode of MODES) {
    const dir = refs.get(mode)!;
    const head = gitText(['rev-parse', 'HEAD'], { cwd: dir }).trim();
    const tree = gitText(['ls-tree', '-r', '--full-tree', 'HEAD'], { cwd: dir })
      .split('\n')
      .filter(Boolean)
      .sort((a, b) => (a.split('\t')[1]! < b.split('\t')[1]! ? -1 : 1))
      .join('\n');
    m.set(mode, { head, index: indexDigest(dir), tree });
  }
  return m;
}

function checkClone(mode: LoadMode, dir: string, want: Expect): void {
  if (mode === 'files') {
    assert.equal(treeListing(dir), want.tree, `${dir}: files differ from git's tree`);
    return;
  }
  assert.equal(gitText(['rev-parse', 'HEAD'], { cwd: dir }).trim(), want.head, `${dir}: HEAD`);
  assert.equal(indexDigest(dir), want.index, `${dir}: index`);
  assert.equal(gitText(['status', '--porcelain'], { cwd: dir }), '', `${dir}: git status not clean`);
}

/** CPU seconds (user + system) a child process has used so far, from /proc (Linux). */
function cpuSeconds(p: ServeProcess): number {
  try {
    const fields = readFileSync(`/proc/${p.child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return NaN;
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** 200 clones at once, round-robin over `servers` and the modes; every one checked. */
async function loadRun(label: string, servers: string[], serverProcs: ServeProcess[]): Promise<void> {
  const want = expected();
  const runDir = join(work, label.replace(/\W+/g, '-'));
  const cpu0 = { clients: process.cpuUsage(), servers: serverProcs.map(cpuSeconds) };
  const t0 = performance.now();
  const results = await Promise.all(
    Array.from({ length: CLONES }, async (_, i) => {
      const mode = MODES[i % MODES.length]!;
      const server = servers[Math.floor(i / MODES.length) % servers.length]!;
      const dir = join(runDir, `${mode}-${i}`);
      const s = performance.now();
      try {
        const r = await clone({ server, name: 'acme/medium', dir, mode: (mode === 'files' ? 'files' : 'editable') as CloneMode, depth: mode === 'full' ? undefined : 1, ...quiet });
        return { i, mode, server, dir, ms: performance.now() - s, bytes: r.bytesDownloaded, commit: r.commit, error: null as string | null };
      } catch (err) {
        return { i, mode, server, dir, ms: performance.now() - s, bytes: 0, commit: null, error: `${(err as Error).message}` };
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const clientCpu = (process.cpuUsage(cpu0.clients).user + process.cpuUsage(cpu0.clients).system) / 1e6;
  const serverCpu = serverProcs.map((p, i) => cpuSeconds(p) - cpu0.servers[i]!);
  const failed = results.filter((r) => r.error !== null);
  assert.deepEqual(failed.slice(0, 5).map((r) => `${r.mode} #${r.i} via ${r.server}: ${r.error}`), [], `${failed.length} of ${CLONES} clones failed`);

  for (const r of results) {
    assert.equal(r.commit, want.get('full')!.head, `${r.dir}: commit`);
    checkClone(r.mode, r.dir, want.get(r.mode)!);
  }
  // A full comparison of one clone per mode per server.
  for (const server of servers)
    for (const mode of MODES) {
      const r = results.find((x) => x.mode === mode && x.server === server)!;
      assert.deepEqual(compareClones(refs.get(mode)!, r.dir, { mode: mode === 'files' ? 'files' : 'editable', ignoreConfigKeys: ['remote.origin.url'] }), [], `${label} ${mode} ${r.dir}`);
    }

  const bytes = results.reduce((a, r) => a + r.bytes, 0);
  const lines = [`${label}: ${CLONES} concurrent clones (${servers.length} server${servers.length > 1 ? 's' : ''}), 0 errors, all verified; wall ${wall.toFixed(1)} s, ${(CLONES / wall).toFixed(1)} clones/s, ${(bytes / 2 ** 20 / wall).toFixed(1)} MiB/s (${(bytes / 2 ** 20).toFixed(1)} MiB downloaded)`];
  lines.push(`  CPU: clients (this process) ${clientCpu.toFixed(1)} s, server process${serverProcs.length > 1 ? 'es' : ''} ${serverCpu.map((c) => `${c.toFixed(1)} s`).join(' + ')}, over ${wall.toFixed(1)} s on ${availableParallelism()} CPUs`);
  for (const mode of MODES) {
    const ms = results.filter((r) => r.mode === mode).map((r) => r.ms).sort((a, b) => a - b);
    const per = results.find((r) => r.mode === mode)!.bytes;
    lines.push(`  ${mode.padEnd(6)} ${ms.length} clones, ${(per / 1024).toFixed(0)} KiB each: p50 ${percentile(ms, 50).toFixed(0)} ms, p99 ${percentile(ms, 99).toFixed(0)} ms, max ${ms[ms.length - 1]!.toFixed(0)} ms`);
  }
  for (const l of lines) console.log(l);
  report.push(...lines);
  removeTmpDir(runDir);
}

const LOAD_ENV = { SNAPCLONE_RATE_LIMIT: '0', SNAPCLONE_LOG: 'info' };

test('200 concurrent clones (full, --depth 1, files) against one server with embedded defaults: no errors, every clone verified', { timeout: 300_000 }, async () => {
  const s = spawnServe(['serve', '--port', '0', '--poll-seconds', '0', '--data-dir', join(work, 'single')], { env: LOAD_ENV });
  procs.push(s);
  const url = await s.ready;
  const added = await runCli(['add', upstream.url, '--name', 'acme/medium', '--server', url], LOAD_ENV, 180_000);
  assert.equal(added.code, 0, added.stderr + s.stderr().slice(-2000));
  const files = gitText(['ls-files'], { cwd: refs.get('full')! }).split('\n').filter(Boolean).length;
  report.push(`upstream: ${upstream.commits} commits, ${files} files at HEAD; client: the library in one process, all clones at once`);
  await loadRun('one server (SQLite, local store)', [url], [s]);
  s.child.kill('SIGTERM');
  await s.exited;
});

test('200 concurrent clones against two servers sharing PostgreSQL and S3: no errors, every clone verified', { timeout: 300_000 }, async (t) => {
  const skip = postgresSkipReason();
  if (skip) return t.skip(skip);
  weed = await startSeaweed();
  if (!weed) return t.skip(WEED_MISSING);
  pg = await startPostgres();
  const env = {
    ...LOAD_ENV,
    ...weed.env(),
    SNAPCLONE_DATABASE_URL: await pg.createDatabase(),
    SNAPCLONE_S3_BUCKET: await weed.createBucket(),
    SNAPCLONE_S3_ENDPOINT: weed.endpoint,
  };
  const servers = [1, 2].map((n) => spawnServe(['serve', '--no-builds', '--port', '0', '--poll-seconds', '0', '--data-dir', join(work, `server-${n}`)], { env }));
  const worker = spawnServe(['worker', '--data-dir', join(work, 'worker'), '--listen', '127.0.0.1:0'], { env });
  procs.push(...servers, worker);
  const urls = await Promise.all(servers.map((s) => s.ready));
  const added = await runCli(['add', upstream.url, '--name', 'acme/medium', '--server', urls[0]!], env, 180_000);
  assert.equal(added.code, 0, added.stderr + servers[0]!.stderr().slice(-2000) + worker.stderr().slice(-2000));
  await loadRun('two servers (PostgreSQL, S3)', urls, servers);
});
