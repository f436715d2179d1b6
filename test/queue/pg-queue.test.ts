/**
 * The PostgreSQL job queue against a real PostgreSQL server: coalescing, SKIP LOCKED claims,
 * one job per repository at a time, leases (expiry, reclaim, the stale holder refused),
 * attempts and dead letters. Workers are separate stores (separate connection pools), as
 * separate processes would be.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { PgJobQueue } from '../../src/queue/postgres/pg-queue.js';
import type { Lease } from '../../src/queue/job-queue.js';
import { PostgresMetadataStore } from '../../src/metadata/postgres/pg-store.js';
import { postgresSkipReason, startPostgres, type PostgresServer } from '../support/postgres.js';

const skip = postgresSkipReason();

/** The promise's value, or 'timed out' after `ms` (the timer is cleared, so it never holds the process). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'timed out'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timed out'>((resolve) => (timer = setTimeout(() => resolve('timed out'), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A job's raw row, lease columns included. */
async function jobRow(sql: PostgresMetadataStore['sql'], id: number) {
  const rows = await sql`SELECT * FROM jobs WHERE id = ${id}`;
  assert.equal(rows.length, 1);
  return rows[0]!;
}

describe('PostgreSQL job queue', { skip: skip ?? false, timeout: 120_000 }, () => {
  let server: PostgresServer;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.stop();
  });

  /** `n` stores (own pools) on one fresh database, each with its queue; closed after the test. */
  async function open(t: { after: (fn: () => Promise<void>) => void }, n: number, maxAttempts?: number) {
    const url = await server.createDatabase();
    const stores: PostgresMetadataStore[] = [];
    for (let i = 0; i < n; i++) stores.push(await PostgresMetadataStore.open(url));
    const queues = stores.map((s) => new PgJobQueue(s, maxAttempts === undefined ? {} : { maxAttempts }));
    t.after(async () => {
      for (const q of queues) await q.close();
      for (const s of stores) await s.close();
    });
    return { url, stores, queues, sql: stores[0]!.sql };
  }

  test('a burst of concurrent enqueues from several connections leaves one queued job; one more may wait behind a running one', async (t) => {
    const { queues, sql } = await open(t, 5);
    const main = { repo: 'a/a', ref: 'refs/heads/main' };
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => queues[i % 5]!.enqueue(main)));
    const first = burst[0]!;
    assert.equal(first.state, 'queued');
    assert.deepEqual(new Set(burst.map((j) => j.id)), new Set([first.id]), 'every enqueue joined the one queued job');
    assert.equal((await sql`SELECT count(*) AS n FROM jobs`)[0]!.n, 1);

    const lease = await queues[0]!.claim('w1', 60_000);
    assert.equal(lease?.job.id, first.id);
    const again = await Promise.all(Array.from({ length: 20 }, (_, i) => queues[i % 5]!.enqueue(main)));
    const behind = again[0]!;
    assert.notEqual(behind.id, first.id, 'a request during the build is queued anew, not lost');
    assert.deepEqual(new Set(again.map((j) => j.id)), new Set([behind.id]));

    const other = await queues[1]!.enqueue({ repo: 'a/a', ref: null });
    assert.notEqual(other.id, behind.id, 'another ref does not join');
    assert.equal((await queues[2]!.enqueue({ repo: 'a/a', ref: null })).id, other.id, 'a null ref joins a queued null ref');
    assert.notEqual((await queues[3]!.enqueue({ repo: 'b/b', ref: 'refs/heads/main' })).id, behind.id, 'another repo does not join');
    const states = await sql`SELECT state, count(*) AS n FROM jobs GROUP BY state ORDER BY state`;
    assert.deepEqual(states.map((r) => [r.state, r.n]), [['queued', 3], ['running', 1]]);
    const stats = await queues[4]!.stats();
    assert.deepEqual({ ...stats, oldestQueuedAt: null }, { queued: 3, running: 1, dead: 0, oldestQueuedAt: null });
    // Its age is the database's, carried over to this clock (the same machine here: within a few ms).
    assert.ok(Math.abs(stats.oldestQueuedAt! - behind.createdAt) < 1000, `${stats.oldestQueuedAt} vs ${behind.createdAt}`);
  });

  test('concurrent claimers take every job exactly once (SKIP LOCKED)', async (t) => {
    const { queues } = await open(t, 6);
    const ids = new Set<number>();
    for (let i = 0; i < 30; i++) ids.add((await queues[0]!.enqueue({ repo: `r/${i}`, ref: null })).id);
    const claimed: number[] = [];
    // Each claimer claims until the queue says there is nothing: a claimer blocked behind
    // another's row lock, instead of skipping it, would come back empty-handed too early.
    await Promise.all(
      queues.map(async (q, i) => {
        for (;;) {
          const lease = await q.claim(`w${i}`, 60_000);
          if (!lease) return;
          claimed.push(lease.job.id);
        }
      }),
    );
    assert.equal(claimed.length, 30, 'no job claimed twice, none left behind');
    assert.deepEqual(new Set(claimed), ids);
  });

  test('a claim skips a job row another transaction has locked instead of waiting for it', async (t) => {
    const { queues, sql } = await open(t, 2);
    const first = await queues[0]!.enqueue({ repo: 'a/a', ref: null });
    const second = await queues[0]!.enqueue({ repo: 'b/b', ref: null });
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const holder = sql.begin(async (tx) => {
      await tx`SELECT id FROM jobs WHERE id = ${first.id} FOR UPDATE`;
      locked();
      await released;
    });
    await isLocked;
    // Released after 10 s at the latest, so a claim that waits for the lock ends the test instead of hanging it.
    const safety = setTimeout(release, 10_000);
    let releasedFirst = false;
    void released.then(() => (releasedFirst = true));
    const lease = await queues[1]!.claim('w1', 60_000);
    const answeredWhileLocked = !releasedFirst;
    clearTimeout(safety);
    release();
    await holder;
    assert.equal(answeredWhileLocked, true, 'the claim answered while the other row was still locked');
    assert.equal(lease?.job.id, second.id);
  });

  test('one job per repository runs at a time, across racing claimers; the oldest goes first', async (t) => {
    const { queues, sql } = await open(t, 6);
    const x = [];
    for (const ref of ['refs/heads/a', 'refs/heads/b', 'refs/heads/c']) x.push(await queues[0]!.enqueue({ repo: 'x/x', ref }));
    const y = await queues[0]!.enqueue({ repo: 'y/y', ref: null });
    const done: number[] = [];
    for (let round = 0; round < 3; round++) {
      const leases = (await Promise.all(queues.map((q, i) => q.claim(`w${i}`, 60_000)))).filter((l): l is Lease => l !== null);
      const running = await sql`SELECT repo, count(*) AS n FROM jobs WHERE state = 'running' GROUP BY repo`;
      for (const r of running) assert.equal(r.n, 1, `round ${round}: ${r.repo} has ${r.n} running jobs`);
      const xLeases = leases.filter((l) => l.job.repo === 'x/x');
      assert.equal(xLeases.length, 1, `round ${round}: exactly one x/x job claimed`);
      assert.equal(xLeases[0]!.job.id, x[round]!.id, 'x/x jobs run in the order they were queued');
      if (round === 0) assert.ok(leases.some((l) => l.job.id === y.id), 'another repository runs alongside');
      for (const l of leases) {
        assert.equal(await queues[0]!.complete(l, { commit: null }), true);
        done.push(l.job.id);
      }
    }
    assert.deepEqual(done.sort((a, b) => a - b), [...x.map((j) => j.id), y.id].sort((a, b) => a - b));
  });

  test('an expired lease is reclaimed by another worker; the stale holder can no longer heartbeat, complete or fail', async (t) => {
    const { queues, sql } = await open(t, 2);
    const [q1, q2] = queues as [PgJobQueue, PgJobQueue];
    const job = await q1.enqueue({ repo: 'a/a', ref: 'refs/heads/main' });
    const stale = await q1.claim('w1', 400);
    assert.ok(stale);
    assert.equal(stale.job.attempts, 1);
    assert.equal(stale.job.state, 'running');
    assert.equal(await q2.claim('w2', 60_000), null, 'a live lease is not reclaimed');
    assert.equal(await q1.heartbeat(stale, 400, 'fetching'), true, 'the holder extends its lease');
    assert.equal((await jobRow(sql, job.id)).phase, 'fetching');

    await sleep(600); // let the lease run out (the database's clock decides)
    const fresh = await q2.claim('w2', 60_000);
    assert.ok(fresh, 'the expired job is claimed again');
    assert.equal(fresh.job.id, job.id);
    assert.equal(fresh.job.attempts, 2);
    assert.notEqual(fresh.token, stale.token);

    assert.equal(await q1.heartbeat(stale, 60_000, 'stale phase'), false);
    assert.equal(await q1.complete(stale, { commit: 'a'.repeat(40) }), false);
    assert.equal(await q1.fail(stale, 'stale failure', 'build-failed'), false);
    const row = await jobRow(sql, job.id);
    assert.deepEqual([row.state, row.lease_owner, row.commit_oid, row.error, row.phase], ['running', 'w2', null, null, 'starting']);

    assert.equal(await q2.complete(fresh, { commit: 'b'.repeat(40) }), true);
    const final = await q1.wait(job.id);
    assert.deepEqual([final.state, final.commit, final.attempts], ['succeeded', 'b'.repeat(40), 2]);
    assert.equal(await q2.complete(fresh, { commit: 'c'.repeat(40) }), false, 'a finished job cannot be finished again');
    assert.equal(await q2.fail(fresh, 'late', null), false);
    assert.equal((await jobRow(sql, job.id)).commit_oid, 'b'.repeat(40));
  });

  test('fail records the error, its code and the phase; wait() sees it', async (t) => {
    const { queues } = await open(t, 1);
    const q = queues[0]!;
    const job = await q.enqueue({ repo: 'a/a', ref: null });
    const lease = await q.claim('w1', 60_000);
    assert.ok(lease);
    const waited = q.wait(job.id);
    assert.equal(await q.heartbeat(lease, 60_000, 'packing history'), true);
    assert.equal(await q.fail(lease, 'no such branch', 'not-found'), true);
    const final = await waited;
    assert.deepEqual([final.state, final.error, final.errorCode, final.phase], ['failed', 'no such branch', 'not-found', 'packing history']);
  });

  test('a job whose lease expires maxAttempts times goes dead, says so, and frees its repository', async (t) => {
    const { queues } = await open(t, 1, 2);
    const q = queues[0]!;
    const job = await q.enqueue({ repo: 'a/a', ref: null });
    const waited = q.wait(job.id);
    const first = await q.claim('w1', 200);
    assert.equal(first?.job.attempts, 1);
    await sleep(350);
    const second = await q.claim('w2', 200);
    assert.equal(second?.job.attempts, 2);
    await sleep(350);
    assert.equal(await q.claim('w3', 200), null, 'not tried a third time');
    const dead = await waited;
    assert.equal(dead.state, 'dead');
    assert.equal(dead.attempts, 2);
    assert.match(dead.error ?? '', /lease expired 2 times/);
    assert.notEqual(dead.finishedAt, null);
    assert.equal(await q.complete(second!, { commit: null }), false, 'its last holder cannot bring it back');
    assert.deepEqual(await q.stats(), { queued: 0, running: 0, dead: 1, oldestQueuedAt: null });

    const next = await q.enqueue({ repo: 'a/a', ref: null });
    assert.equal((await q.claim('w4', 60_000))?.job.id, next.id, 'a dead job does not block its repository');
  });

  test('waitForWork wakes on an enqueue from another connection, and on abort', async (t) => {
    const { queues } = await open(t, 2);
    // Prime the listener so the notification below cannot come before it listens.
    await queues[0]!.waitForWork(50);
    const woke = queues[0]!.waitForWork(60_000).then(() => 'woke');
    await sleep(100);
    await queues[1]!.enqueue({ repo: 'a/a', ref: null });
    assert.equal(await within(woke, 10_000), 'woke');
    const ac = new AbortController();
    const aborted = queues[0]!.waitForWork(60_000, ac.signal).then(() => 'aborted');
    ac.abort();
    assert.equal(await within(aborted, 10_000), 'aborted');
  });

  test('enqueue after close is refused; wait() on an unknown job says not found', async (t) => {
    const { queues } = await open(t, 1);
    await assert.rejects(queues[0]!.wait(12345), /job 12345 not found/);
    await queues[0]!.close();
    await assert.rejects(queues[0]!.enqueue({ repo: 'a/a', ref: null }), /closed/);
  });
});
