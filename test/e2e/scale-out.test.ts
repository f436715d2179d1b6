/**
 * The scale-out scenario, all real processes: two `snapclone serve --no-builds`, two
 * `snapclone worker`, one PostgreSQL, one S3-compatible store (SeaweedFS). 20 clones run
 * across both servers while syncs run; the worker holding a job is SIGKILLed mid-job; the
 * job completes on the other worker, and every clone equals `git clone` of the upstream at
 * the commit it got. The upstream is reached through a gate (ssh to a local repository)
 * that holds the job while the test kills its worker, so nothing depends on timing. Clones
 * run with the hermetic git identity of the reference clones (their reflogs name it).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import type { PostgresServer } from '../support/postgres.js';
import { startSharedEngines } from '../support/engines.js';
import type { Seaweed } from '../support/seaweed.js';
import { makeMediumRepo, randomBytes, type MediumRepo } from '../support/fixtures.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { compareClones } from '../support/compare.js';
import { git, gitText, tmpDir } from '../support/git.js';
import { gatedSsh, type Gate } from '../serve/gated-upstream.js';
import { cli } from './harness.js';
import { runCli, spawnServe, until, getJson, type ServeProcess } from '../serve/process-helpers.js';

let work: string;
let pg: PostgresServer | null = null;
let weed: Seaweed | null = null;
let sql: postgres.Sql | null = null;
let gate: Gate;
let medium: MediumRepo;
let env: Record<string, string>;
const servers: ServeProcess[] = [];
const workers: ServeProcess[] = [];
let skip: string | null = null;

/** Reference `git clone`s (full and --depth 1) of the upstream, by the commit its default branch was at. */
const references = new Map<string, { full: string; shallow: string }>();

function referenceClone(tag: string): void {
  const full = join(work, `ref-${tag}`);
  const shallow = join(work, `ref-${tag}-depth1`);
  git(['clone', '--quiet', medium.url, full], { cwd: work });
  git(['clone', '--quiet', '--depth', '1', `file://${medium.path}`, shallow], { cwd: work });
  references.set(gitText(['rev-parse', 'HEAD'], { cwd: full }).trim(), { full, shallow });
}

function spawnWorker(n: number): ServeProcess {
  const w = spawnServe(['worker', '--data-dir', join(work, `worker-${n}`), '--listen', '127.0.0.1:0'], { env });
  workers.push(w);
  return w;
}

async function workerReady(w: ServeProcess): Promise<void> {
  await until('worker running', () => /snapclone worker running/.test(w.stderr()) || w.child.exitCode !== null, 30_000);
  assert.equal(w.child.exitCode, null, `worker exited:\n${w.stderr()}`);
}

async function jobRow(id: number): Promise<{ state: string; attempts: number; lease_owner: string | null; error: string | null }> {
  const rows = await sql!`SELECT state, attempts, lease_owner, error FROM jobs WHERE id = ${id}`;
  return rows[0] as never;
}

async function waitJob(id: number, timeoutMs = 120_000): Promise<{ state: string; attempts: number; error: string | null }> {
  let row = await jobRow(id);
  await until(`job ${id} finished`, async () => ['succeeded', 'failed', 'dead'].includes((row = await jobRow(id)).state), timeoutMs);
  return row;
}

/** Push one commit (with `files` new files, else empty) to the upstream's default branch; its new head. */
function push(tag: string, files = 0): string {
  const scratch = join(work, `pusher-${tag}`);
  git(['clone', '--quiet', medium.url, scratch], { cwd: work });
  for (let i = 0; i < files; i++) {
    mkdirSync(join(scratch, 'gen', String(i % 50)), { recursive: true });
    writeFileSync(join(scratch, 'gen', String(i % 50), `f${i}.txt`), randomBytes(1500, i + 1).toString('base64'));
  }
  if (files) git(['add', '-A'], { cwd: scratch });
  git(['commit', '--quiet', '--allow-empty', '-m', `push ${tag}`], { cwd: scratch });
  git(['push', '--quiet', 'origin', `HEAD:${medium.headBranch}`], { cwd: scratch });
  return gitText(['rev-parse', 'HEAD'], { cwd: scratch }).trim();
}

before(async () => {
  const engines = await startSharedEngines();
  if ('skip' in engines) {
    skip = engines.skip;
    return;
  }
  ({ pg, weed } = engines);
  work = tmpDir('snapclone-scale-out');
  gate = gatedSsh(work); // sets GIT_SSH_COMMAND for every process started from here
  medium = makeMediumRepo(work, { commits: 60 });
  const dbUrl = await pg.createDatabase();
  sql = postgres(dbUrl, { max: 2, onnotice: () => {} });
  const bucket = await weed.createBucket();
  env = {
    ...weed.env(),
    SNAPCLONE_DATABASE_URL: dbUrl,
    SNAPCLONE_S3_BUCKET: bucket,
    SNAPCLONE_S3_ENDPOINT: weed.endpoint,
    SNAPCLONE_LEASE_SECONDS: '3',
    SNAPCLONE_LOG: 'info',
    GIT_SSH_COMMAND: process.env.GIT_SSH_COMMAND!,
    GIT_SSH_VARIANT: 'simple',
  };
  for (const n of [1, 2]) servers.push(spawnServe(['serve', '--no-builds', '--port', '0', '--poll-seconds', '0', '--data-dir', join(work, `server-${n}`)], { env }));
  for (const n of [1, 2]) spawnWorker(n);
  await Promise.all([...servers.map((s) => s.ready), ...workers.map(workerReady)]);
});

after(async () => {
  gate?.open();
  for (const p of [...servers, ...workers]) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  await Promise.all([...servers, ...workers].map((p) => p.exited));
  await sql?.end({ timeout: 1 });
  await pg?.stop();
  await weed?.stop();
});

test('two servers, two workers, PostgreSQL and S3: a killed worker loses no job, every clone equals git clone', { timeout: 300_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const [a, b] = await Promise.all(servers.map((s) => s.ready));
  const url = gate.url(medium.path);

  // Registered through one server, built by a worker, served by both.
  referenceClone('0');
  const added = await runCli(['add', url, '--name', 'acme/medium', '--visibility', 'public', '--server', a!, '--json']);
  assert.equal(added.code, 0, added.stderr + servers[0]!.stderr().slice(-3000));
  const first = await waitJob(JSON.parse(added.stdout).job.id);
  assert.equal(first.state, 'succeeded', first.error ?? '');

  // A push, a sync through the other server; the gate holds the job at the upstream.
  gate.shut();
  push('1');
  referenceClone('1');
  const synced = await runCli(['sync', 'acme/medium', '--no-wait', '--json', '--server', b!]);
  assert.equal(synced.code, 0, synced.stderr);
  const jobId = JSON.parse(synced.stdout).job.id as number;
  let held = await jobRow(jobId);
  await until('a worker holds the sync', async () => (held = await jobRow(jobId)).state === 'running' && held.lease_owner !== null, 30_000);

  // 20 clones across both servers while that sync runs.
  const clones = Array.from({ length: 20 }, (_, i) => {
    const dir = join(work, `clone-${i}`);
    const flags = i % 4 === 3 ? ['--depth', '1'] : i % 4 === 2 ? ['--mode', 'files'] : [];
    return cli(i % 2 ? a! : b!, ['clone', 'acme/medium', dir, '--json', ...flags]).then((r) => ({ r, dir, flags }));
  });

  // Kill the worker that holds the job, at once, the way a machine vanishes.
  const owner = held.lease_owner!;
  const victim = workers.find((w) => owner.startsWith(`${hostname()}:${w.child.pid}`));
  assert.ok(victim, `the lease owner ${owner} is one of our workers`);
  victim.child.kill('SIGKILL');
  await victim.exited;
  gate.open();

  // The other worker takes the job over once the lease runs out, and finishes it.
  const done = await waitJob(jobId);
  assert.equal(done.state, 'succeeded', done.error ?? '');
  assert.equal(done.attempts, 2, 'claimed twice: by the killed worker and by the one that finished it');

  // A worker started on an empty disk joins and builds the next push (bootstrapping its mirror).
  const fresh = spawnWorker(3);
  await workerReady(fresh);
  push('2');
  referenceClone('2');
  const again = await runCli(['sync', 'acme/medium', '--json', '--server', a!], {}, 120_000);
  assert.equal(again.code, 0, again.stderr);

  const problems = () => servers.map((p) => p.stderr().split('\n').filter((l) => /"level":"(error|warn)"/.test(l)).slice(-5).join('\n')).join('\n');
  for (const { r, dir, flags } of await Promise.all(clones)) {
    assert.equal(r.code, 0, `${r.stderr}${problems()}`);
    const commit = JSON.parse(r.stdout).commit as string;
    const expected = references.get(commit);
    assert.ok(expected, `clone at ${commit}, a state the upstream was in`);
    const mode = flags[0] === '--mode' ? 'files' : 'editable';
    const ref = flags[0] === '--depth' ? expected.shallow : expected.full;
    assert.deepEqual(compareClones(ref, dir, { mode, ignoreConfigKeys: ['remote.origin.url'] }), [], `${dir} (${flags.join(' ') || 'full'})`);
  }

  // After everything: both servers serve the newest push, identical to git clone in every mode.
  const head = gitText(['rev-parse', medium.headBranch], { cwd: medium.path }).trim();
  for (const [server, tag] of [[a!, 'a'], [b!, 'b']] as const) {
    const st = await getJson(`${server}/v1/repos/${encodeURIComponent("acme/medium")}`);
    assert.equal(st.json.refs.find((x: { ref: string }) => x.ref === `refs/heads/${medium.headBranch}`).commit, head);
    for (const [gitFlags, snapFlags, mode] of [
      [[], [], 'editable'],
      [['--depth', '1'], ['--depth', '1'], 'editable'],
    ] as const) {
      const g = join(work, `final-g-${tag}-${snapFlags.length}`);
      const s = join(work, `final-s-${tag}-${snapFlags.length}`);
      git(['clone', '--quiet', ...gitFlags, `file://${medium.path}`, g], { cwd: work });
      const r = await cli(server, ['clone', 'acme/medium', s, ...snapFlags]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(compareClones(g, s, { mode, ignoreConfigKeys: ['remote.origin.url'] }), [], `${tag} ${snapFlags.join(' ') || 'full'}`);
    }
  }

  // The workers' own /metrics count the builds they ran (the servers build nothing); /readyz says their engines answer.
  let built = 0;
  for (const w of workers.filter((x) => x.child.exitCode === null && x.child.signalCode === null)) {
    const port = /metrics on (\d+)/.exec(w.stderr())?.[1];
    assert.ok(port, 'a worker with --listen names its port');
    assert.equal((await getJson(`http://127.0.0.1:${port}/readyz`)).status, 200);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    for (const m of text.matchAll(/^snapclone_builds_total\{[^}]*outcome="succeeded"[^}]*\} (\d+)/gm)) built += Number(m[1]);
  }
  assert.ok(built >= 2, `the surviving workers ran the taken-over sync and the last one (${built} builds counted)`);

  // A kill once the build is under way (its depth-1 records published, the rest not yet): what is
  // published then clones like git clone at its commit, and the job completes elsewhere.
  const big = push('3', 3000);
  referenceClone('3');
  const third = await runCli(['sync', 'acme/medium', '--no-wait', '--json', '--server', b!]);
  assert.equal(third.code, 0, third.stderr);
  const thirdId = JSON.parse(third.stdout).job.id as number;
  const published = async (mode: string) =>
    (await sql!`SELECT 1 FROM ref_modes WHERE repo = 'acme/medium' AND mode = ${mode} AND commit_oid = ${big}`).length > 0;
  let row = await jobRow(thirdId);
  await until('the big build published its depth-1 records, or finished', async () => (row = await jobRow(thirdId)).state !== 'running' ? row.state !== 'queued' : await published('shallow'), 120_000);
  let killedMidBuild = false;
  if (row.state === 'running') {
    const holder = workers.find((w) => row.lease_owner?.startsWith(`${hostname()}:${w.child.pid}`));
    assert.ok(holder, 'the holder is one of our workers');
    holder.child.kill('SIGKILL');
    await holder.exited;
    killedMidBuild = !(await published('full'));
    // Whatever was published before the kill serves complete clonepacks.
    for (const [flags, mode, which] of [[['--depth', '1'], 'editable', 'shallow'], [[], 'editable', 'full']] as const) {
      const dir = join(work, `midkill-${which}`);
      const r = await cli(a!, ['clone', 'acme/medium', dir, '--json', ...flags]);
      assert.equal(r.code, 0, r.stderr);
      const got = references.get(JSON.parse(r.stdout).commit as string)!;
      assert.deepEqual(compareClones(which === 'shallow' ? got.shallow : got.full, dir, { mode, ignoreConfigKeys: ['remote.origin.url'] }), [], `${which} right after the kill`);
    }
  }
  const third2 = await waitJob(thirdId);
  assert.equal(third2.state, 'succeeded', third2.error ?? '');
  if (killedMidBuild) assert.equal(third2.attempts, 2, 'taken over after the kill');
  t.diagnostic(`big build: ${killedMidBuild ? 'killed between its depth-1 and full records, finished by another worker' : 'finished before the kill could land'}`);
  for (const mode of ['shallow', 'files', 'full']) assert.ok(await published(mode), `${mode} names the big commit in the end`);
});
