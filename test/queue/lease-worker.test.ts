/**
 * runLeaseWorkers on the PostgreSQL queue against a real PostgreSQL server: jobs run and are
 * recorded, stop() semantics, a lost lease stops the build at its next report, heartbeats
 * never overlap, one job per repository across workers, and a worker process killed with
 * SIGKILL mid-job: another worker completes the job, the dead one's late writes are refused.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { PgJobQueue } from '../../src/queue/postgres/pg-queue.js';
import { runLeaseWorkers, type JobEnd } from '../../src/queue/lease-worker.js';
import type { JobRunner, Lease, LeasedQueue } from '../../src/queue/job-queue.js';
import { PostgresMetadataStore } from '../../src/metadata/postgres/pg-store.js';
import { SnapError } from '../../src/util/errors.js';
import { postgresSkipReason, startPostgres, type PostgresServer } from '../support/postgres.js';

const skip = postgresSkipReason();
const COMMIT = 'c'.repeat(40);

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Wait until `check` holds, polling; fails the test (instead of hanging it) after `ms`. */
async function until(what: string, check: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

describe('lease workers on PostgreSQL', { skip: skip ?? false, timeout: 180_000 }, () => {
  let server: PostgresServer;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.stop();
  });

  async function open(t: { after: (fn: () => Promise<void>) => void }, n: number) {
    const url = await server.createDatabase();
    const stores: PostgresMetadataStore[] = [];
    for (let i = 0; i < n; i++) stores.push(await PostgresMetadataStore.open(url));
    const queues = stores.map((s) => new PgJobQueue(s));
    const stops: Array<() => Promise<void>> = [];
    t.after(async () => {
      for (const stop of stops) await stop();
      for (const q of queues) await q.close();
      for (const s of stores) await s.close();
    });
    const start = (opts: Parameters<typeof runLeaseWorkers>[0]) => {
      const w = runLeaseWorkers({ pollMs: 100, ...opts });
      stops.push(w.stop);
      return w;
    };
    return { url, stores, queues, sql: stores[0]!.sql, start };
  }

  test('runs jobs, records their phase, result and errors, and reports each end', async (t) => {
    const { queues, start } = await open(t, 1);
    const q = queues[0]!;
    const ends: JobEnd[] = [];
    const runner: JobRunner = async (job, report) => {
      report('fetching');
      report('packing history');
      if (job.repo === 'bad/bad') throw new SnapError('not-found', 'no such branch: refs/heads/x');
      return { commit: COMMIT };
    };
    start({ queue: q, runner, workerId: 'w1', onJobEnd: (e) => ends.push(e) });
    const good = await q.enqueue({ repo: 'good/good', ref: null });
    const bad = await q.enqueue({ repo: 'bad/bad', ref: 'refs/heads/x' });
    const [g, b] = await Promise.all([q.wait(good.id), q.wait(bad.id)]);
    assert.deepEqual([g.state, g.commit, g.phase, g.attempts], ['succeeded', COMMIT, 'done', 1]);
    assert.deepEqual([b.state, b.error, b.errorCode, b.phase], ['failed', 'no such branch: refs/heads/x', 'not-found', 'packing history']);
    await until('both ends reported', () => ends.length === 2);
    assert.deepEqual(ends.map((e) => [e.job.id, e.outcome, e.recorded]).sort(), [[good.id, 'succeeded', true], [bad.id, 'failed', true]].sort());
  });

  test('stop() claims nothing more and resolves once the running job is recorded', async (t) => {
    const { queues, sql, start } = await open(t, 1);
    const q = queues[0]!;
    const started = deferred<number>();
    const release = deferred();
    const w = start({
      queue: q,
      workerId: 'w1',
      runner: async (job) => {
        started.resolve(job.id);
        await release.promise;
        return { commit: COMMIT };
      },
    });
    const a = await q.enqueue({ repo: 'a/a', ref: null });
    assert.equal(await started.promise, a.id);
    let stopped = false;
    const stopping = w.stop().then(() => (stopped = true));
    const b = await q.enqueue({ repo: 'b/b', ref: null });
    await sleep(300); // time for a worker that still claimed to take b
    assert.equal(stopped, false, 'stop() waits for the running job');
    release.resolve();
    await stopping;
    const rows = await sql`SELECT id, state, attempts FROM jobs ORDER BY id`;
    assert.deepEqual(rows.map((r) => [r.id, r.state, r.attempts]), [[a.id, 'succeeded', 1], [b.id, 'queued', 0]]);
  });

  test('once the lease is lost, report() throws and the stale result is not recorded', async (t) => {
    const { queues, sql, start } = await open(t, 2);
    const [q1, q2] = queues as [PgJobQueue, PgJobQueue];
    const started = deferred<number>();
    let thrown: unknown = null;
    const ends: JobEnd[] = [];
    start({
      queue: q1,
      workerId: 'stale',
      leaseMs: 3000,
      heartbeatMs: 200,
      onJobEnd: (e) => ends.push(e),
      runner: async (job, report) => {
        started.resolve(job.id);
        // A build's steps: each reports, and stops the build once the lease is gone.
        try {
          for (;;) {
            report('step');
            await sleep(20);
          }
        } catch (err) {
          thrown = err;
          throw err;
        }
      },
    });
    const job = await q1.enqueue({ repo: 'a/a', ref: null });
    assert.equal(await started.promise, job.id);
    // As if the worker had been paused past its lease: expire it, and let another worker take the job.
    await sql`UPDATE jobs SET lease_until = 0 WHERE id = ${job.id}`;
    const thief = await q2.claim('thief', 60_000);
    assert.equal(thief?.job.id, job.id);
    await until('the stale worker to notice', () => ends.length === 1);
    assert.ok(thrown instanceof SnapError, `report threw ${String(thrown)}`);
    assert.equal(thrown.code, 'conflict');
    assert.match(thrown.message, /lease lost/);
    assert.deepEqual([ends[0]!.outcome, ends[0]!.recorded], ['lease-lost', false]);
    const [row] = await sql`SELECT state, lease_owner, attempts, phase, error FROM jobs WHERE id = ${job.id}`;
    assert.deepEqual([row!.state, row!.lease_owner, row!.attempts, row!.phase, row!.error], ['running', 'thief', 2, 'starting', null]);
    assert.equal(await q2.complete(thief!, { commit: COMMIT }), true);
  });

  test('heartbeats never overlap, carry the latest phase, and keep the lease', async (t) => {
    const { queues, sql, start } = await open(t, 2);
    const inner = queues[0]!;
    let active = 0;
    let maxActive = 0;
    const beats: Array<string | undefined> = [];
    // A slow database: each heartbeat takes longer than the interval between them.
    const slow: LeasedQueue = {
      enqueue: (r) => inner.enqueue(r),
      wait: (id) => inner.wait(id),
      stats: () => inner.stats(),
      close: () => inner.close(),
      claim: (w, ms) => inner.claim(w, ms),
      complete: (l, r) => inner.complete(l, r),
      fail: (l, e, c) => inner.fail(l, e, c),
      waitForWork: (ms, s) => inner.waitForWork(ms, s),
      heartbeat: async (l: Lease, ms: number, phase?: string) => {
        active++;
        maxActive = Math.max(maxActive, active);
        beats.push(phase);
        try {
          await sleep(150);
          return await inner.heartbeat(l, ms, phase);
        } finally {
          active--;
        }
      },
    };
    const seen = deferred();
    const running = deferred();
    start({
      queue: slow,
      workerId: 'w1',
      leaseMs: 1500,
      heartbeatMs: 20,
      runner: async (job, report) => {
        running.resolve();
        // Runs for several leases: it survives only if heartbeats keep extending it.
        for (let i = 0; i < 200; i++) {
          report(`step ${i}`);
          await sleep(20);
        }
        const [row] = await sql`SELECT phase FROM jobs WHERE id = ${job.id}`;
        assert.match(String(row!.phase), /^step \d+$/);
        seen.resolve();
        return { commit: COMMIT };
      },
    });
    const job = await inner.enqueue({ repo: 'a/a', ref: null });
    await running.promise;
    // Another worker trying all along must never get the job: its lease never runs out.
    let stolen = false;
    const other = queues[1]!;
    const done = inner.wait(job.id);
    let finished = false;
    void done.then(() => (finished = true));
    while (!finished) {
      const l = await other.claim('other', 60_000);
      if (l) stolen = true;
      await sleep(100);
    }
    await seen.promise;
    const final = await done;
    assert.equal(final.state, 'succeeded');
    assert.equal(final.attempts, 1);
    assert.equal(stolen, false);
    assert.equal(maxActive, 1, 'one heartbeat at a time');
    assert.ok(beats.length >= 3, `heartbeats were sent (${beats.length})`);
    assert.ok(beats.length < 200, `phases were coalesced into fewer writes (${beats.length})`);
  });

  test('workers in several processes run one job per repository at a time', async (t) => {
    const { queues, start } = await open(t, 3);
    const active = new Map<string, number>();
    let maxPerRepo = 0;
    const runner: JobRunner = async (job) => {
      const n = (active.get(job.repo) ?? 0) + 1;
      active.set(job.repo, n);
      maxPerRepo = Math.max(maxPerRepo, n);
      await sleep(100);
      active.set(job.repo, (active.get(job.repo) ?? 1) - 1);
      return { commit: COMMIT };
    };
    start({ queue: queues[1]!, runner, workerId: 'a', concurrency: 2 });
    start({ queue: queues[2]!, runner, workerId: 'b', concurrency: 2 });
    const jobs = [];
    for (const repo of ['x/x', 'y/y']) {
      for (const ref of ['refs/heads/1', 'refs/heads/2', 'refs/heads/3']) jobs.push(await queues[0]!.enqueue({ repo, ref }));
    }
    const finals = await Promise.all(jobs.map((j) => queues[0]!.wait(j.id)));
    assert.deepEqual(finals.map((j) => j.state), Array(6).fill('succeeded'));
    assert.equal(maxPerRepo, 1);
  });

  test('a worker process killed with SIGKILL mid-job: another worker completes the job; the dead one is refused', async (t) => {
    const { url, queues, sql, start } = await open(t, 1);
    const q = queues[0]!;
    const job = await q.enqueue({ repo: 'a/a', ref: 'refs/heads/main' });
    const script = fileURLToPath(new URL('./blocking-worker.js', import.meta.url));
    const child = spawn(process.execPath, [script, url, 'doomed', '1500'], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: string) => {
        out += d;
        if (out.includes('\n')) resolve();
      });
      child.once('exit', (code, signal) => reject(new Error(`worker exited early: ${code ?? signal}`)));
    });
    assert.equal(out.trim(), `started ${job.id}`);
    const [held] = await sql`SELECT state, lease_owner, lease_token, attempts FROM jobs WHERE id = ${job.id}`;
    assert.deepEqual([held!.state, held!.lease_owner, held!.attempts], ['running', 'doomed', 1]);
    const deadLease: Lease = { job: { ...job, state: 'running' }, token: String(held!.lease_token) };

    child.kill('SIGKILL');
    await once(child, 'exit');
    assert.equal(child.signalCode, 'SIGKILL');

    const ran: number[] = [];
    start({
      queue: q,
      workerId: 'survivor',
      leaseMs: 5000,
      runner: async (j, report) => {
        ran.push(j.id);
        report('fetching');
        return { commit: COMMIT };
      },
    });
    const final = await q.wait(job.id);
    assert.deepEqual([final.state, final.commit, final.attempts], ['succeeded', COMMIT, 2]);
    assert.deepEqual(ran, [job.id]);
    const [after] = await sql`SELECT lease_owner FROM jobs WHERE id = ${job.id}`;
    assert.equal(after!.lease_owner, 'survivor');

    // The killed worker's writes, had it lived: all refused, nothing changed.
    assert.equal(await q.complete(deadLease, { commit: 'd'.repeat(40) }), false);
    assert.equal(await q.fail(deadLease, 'late failure', 'build-failed'), false);
    assert.equal(await q.heartbeat(deadLease, 60_000, 'late phase'), false);
    const again = await q.wait(job.id);
    assert.deepEqual([again.state, again.commit, again.error, again.phase], ['succeeded', COMMIT, null, 'done']);
  });
});
