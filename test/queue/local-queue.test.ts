import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalJobQueue, INTERRUPTED, CANCELLED } from '../../src/queue/local/local-queue.js';
import type { JobRunner } from '../../src/queue/job-queue.js';
import { SqliteMetadataStore } from '../../src/metadata/sqlite/sqlite-store.js';
import type { JobRecord } from '../../src/metadata/metadata-store.js';
import { SnapError } from '../../src/util/errors.js';

function tempStore(t: { after: (fn: () => void) => void }): SqliteMetadataStore {
  const dir = mkdtempSync(join(tmpdir(), 'snapclone-queue-'));
  const store = new SqliteMetadataStore(join(dir, 'meta.db'));
  t.after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A runner whose jobs block until released, so tests decide when each one ends. */
function gatedRunner() {
  const gates = new Map<number, Deferred>();
  const started = new Map<number, Deferred>();
  const calls: JobRecord[] = [];
  const gate = (m: Map<number, Deferred>, id: number): Deferred => {
    let d = m.get(id);
    if (!d) m.set(id, (d = deferred()));
    return d;
  };
  const runner: JobRunner = async (job) => {
    calls.push(job);
    gate(started, job.id).resolve();
    await gate(gates, job.id).promise;
    return { commit: `${job.id}`.padStart(40, '0') };
  };
  return {
    runner,
    calls,
    release: (id: number) => gate(gates, id).resolve(),
    started: (id: number) => gate(started, id).promise,
  };
}

test('coalescing: a request equal to a queued job joins it; one equal to a running job queues anew', async (t) => {
  const store = tempStore(t);
  const r = gatedRunner();
  const q = new LocalJobQueue(store, r.runner, {});
  const main = { repo: 'a/a', ref: 'refs/heads/main' };

  const j1 = await q.enqueue(main);
  assert.equal(j1.state, 'queued');
  assert.equal((await q.enqueue(main)).id, j1.id, 'same tick, still queued: joins');
  await r.started(j1.id);

  const j2 = await q.enqueue(main);
  assert.notEqual(j2.id, j1.id, 'j1 is running, so a push during the build is not lost');
  assert.equal((await q.enqueue(main)).id, j2.id);
  const j3 = await q.enqueue({ repo: 'a/a', ref: null });
  assert.notEqual(j3.id, j2.id, 'a different ref does not join');
  assert.equal((await q.enqueue({ repo: 'a/a', ref: null })).id, j3.id, 'null ref joins a queued null ref');
  const j4 = await q.enqueue({ repo: 'b/b', ref: 'refs/heads/main' });
  assert.notEqual(j4.id, j2.id, 'a different repo does not join');

  for (const id of [j1.id, j2.id, j3.id, j4.id]) r.release(id);
  const done = await Promise.all([j1, j2, j3, j4].map((j) => q.wait(j.id)));
  assert.deepEqual(done.map((j) => j.state), ['succeeded', 'succeeded', 'succeeded', 'succeeded']);
  assert.deepEqual(r.calls.map((j) => j.id).sort((x, y) => x - y), [j1.id, j2.id, j3.id, j4.id]);
  assert.equal((await store.listJobs('a/a', 100)).length, 3);
  await q.close();
});

test('records state, phase, times and commit through the store', async (t) => {
  const store = tempStore(t);
  const seen: JobRecord[] = [];
  let release!: () => void;
  const hold = new Promise<void>((res) => (release = res));
  const q = new LocalJobQueue(
    store,
    async (job, report) => {
      seen.push(job);
      report('fetching');
      await hold;
      report('packing history');
      return { commit: 'f'.repeat(40) };
    },
    { concurrency: 1 },
  );
  const job = await q.enqueue({ repo: 'a/a', ref: 'refs/heads/main' });
  assert.deepEqual(await store.getJob(job.id), job);
  // Phases are written at most every 300 ms: wait for it rather than assume when.
  for (let i = 0; i < 100 && (await store.getJob(job.id))!.phase !== 'fetching'; i++) await sleep(20);
  const running = (await store.getJob(job.id))!;
  assert.equal(running.state, 'running');
  assert.equal(running.phase, 'fetching');
  assert.ok(running.startedAt !== null && running.finishedAt === null);
  assert.equal(seen[0]!.state, 'running', 'the runner sees the running record');
  release();
  const final = await q.wait(job.id);
  assert.equal(final.state, 'succeeded');
  assert.equal(final.commit, 'f'.repeat(40));
  assert.equal(final.error, null);
  assert.ok(final.finishedAt! >= final.startedAt!);
  assert.deepEqual(await store.getJob(job.id), final);
  await q.close();
});

test('phase reports are coalesced: a burst of them writes the store a few times, and the last phase lands', async (t) => {
  const store = tempStore(t);
  const writes: string[] = [];
  const update = store.updateJob.bind(store);
  store.updateJob = (id, patch) => {
    if (patch.phase !== undefined && patch.state === undefined) writes.push(patch.phase);
    return update(id, patch);
  };
  let release!: () => void;
  const hold = new Promise<void>((res) => (release = res));
  const q = new LocalJobQueue(store, async (_job, report) => {
    for (let i = 0; i < 200; i++) report(`step ${i}`);
    await hold;
    return { commit: null };
  });
  const job = await q.enqueue({ repo: 'a/a', ref: null });
  for (let i = 0; i < 100 && (await store.getJob(job.id))!.phase !== 'step 199'; i++) await sleep(20);
  assert.equal((await store.getJob(job.id))!.phase, 'step 199', 'the last phase is written');
  assert.ok(writes.length <= 2, `200 reports wrote ${writes.length} phase updates`);
  release();
  assert.equal((await q.wait(job.id)).state, 'succeeded');
  await q.close();
});

test('two jobs for one repo never overlap; two repos do when concurrency allows', async (t) => {
  for (const concurrency of [1, 2, 4]) {
    const store = tempStore(t);
    const active = new Map<string, number>();
    let total = 0;
    let maxTotal = 0;
    let maxPerRepo = 0;
    const order: string[] = [];
    const q = new LocalJobQueue(
      store,
      async (job) => {
        order.push(`${job.repo} ${job.ref}`);
        const n = (active.get(job.repo) ?? 0) + 1;
        active.set(job.repo, n);
        maxPerRepo = Math.max(maxPerRepo, n);
        maxTotal = Math.max(maxTotal, ++total);
        await sleep(5 + Math.random() * 10);
        active.set(job.repo, active.get(job.repo)! - 1);
        total--;
        return { commit: null };
      },
      { concurrency },
    );
    const jobs: JobRecord[] = [];
    for (const ref of ['r1', 'r2', 'r3', 'r4']) {
      jobs.push(await q.enqueue({ repo: 'a/a', ref }));
      jobs.push(await q.enqueue({ repo: 'b/b', ref }));
    }
    jobs.push(await q.enqueue({ repo: 'c/c', ref: 'r1' }));
    const done = await Promise.all(jobs.map((j) => q.wait(j.id)));
    assert.ok(done.every((j) => j.state === 'succeeded'));
    assert.equal(maxPerRepo, 1, `concurrency ${concurrency}: a repo ran two jobs at once`);
    assert.equal(maxTotal, Math.min(concurrency, 3), `concurrency ${concurrency}: limit not reached or exceeded`);
    // A repo's jobs run in the order they were queued.
    assert.deepEqual(order.filter((s) => s.startsWith('a/a')), ['a/a r1', 'a/a r2', 'a/a r3', 'a/a r4']);
    assert.deepEqual(order.filter((s) => s.startsWith('b/b')), ['b/b r1', 'b/b r2', 'b/b r3', 'b/b r4']);
    await q.close();
  }
});

test('a failing runner records its message and the queue keeps going', async (t) => {
  const store = tempStore(t);
  const q = new LocalJobQueue(
    store,
    async (job, report) => {
      report('packing history');
      if (job.ref === 'refs/heads/throws') throw new SnapError('build-failed', 'git pack-objects died');
      if (job.ref === 'refs/heads/string') throw 'not an Error';
      if (job.ref === 'refs/heads/late') {
        setTimeout(() => report('too late'), 5);
        throw new Error('gone');
      }
      return { commit: 'a'.repeat(40) };
    },
    { concurrency: 1 },
  );
  // A runner that throws synchronously, not from a promise, is also contained.
  const syncStore = tempStore(t);
  const syncQ = new LocalJobQueue(syncStore, () => {
    throw new Error('sync throw');
  }, {});

  const bad = await q.enqueue({ repo: 'a/a', ref: 'refs/heads/throws' });
  const str = await q.enqueue({ repo: 'a/a', ref: 'refs/heads/string' });
  const late = await q.enqueue({ repo: 'a/a', ref: 'refs/heads/late' });
  const good = await q.enqueue({ repo: 'a/a', ref: 'refs/heads/main' });
  const syncBad = await syncQ.enqueue({ repo: 'a/a', ref: null });

  const b = await q.wait(bad.id);
  assert.equal(b.state, 'failed');
  assert.equal(b.error, 'git pack-objects died');
  assert.equal(b.phase, 'packing history', 'the phase says where it failed');
  assert.ok(b.finishedAt !== null);
  assert.equal((await q.wait(str.id)).error, 'not an Error');
  assert.equal((await q.wait(late.id)).error, 'gone');
  const g = await q.wait(good.id);
  assert.equal(g.state, 'succeeded');
  assert.equal(g.commit, 'a'.repeat(40));
  const s = await syncQ.wait(syncBad.id);
  assert.equal(s.state, 'failed');
  assert.equal(s.error, 'sync throw');

  await sleep(20);
  assert.equal((await store.getJob(late.id))!.phase, 'packing history', 'a report after the end is ignored');
  await q.close();
  await syncQ.close();
});

test('wait on a finished job reads it from the store, also from a new queue', async (t) => {
  const store = tempStore(t);
  const runner: JobRunner = async () => ({ commit: 'b'.repeat(40) });
  const q = new LocalJobQueue(store, runner, {});
  const job = await q.enqueue({ repo: 'a/a', ref: 'refs/heads/main' });
  const first = await q.wait(job.id);
  assert.equal(first.state, 'succeeded');
  assert.deepEqual(await q.wait(job.id), first);
  await q.close();
  assert.deepEqual(await q.wait(job.id), first);

  const q2 = new LocalJobQueue(store, runner, {});
  assert.deepEqual(await q2.wait(job.id), first);
  await assert.rejects(q2.wait(123456), (e: unknown) => e instanceof SnapError && e.code === 'not-found');
  await q2.close();
});

test('construction changes nothing; recover() marks jobs left unfinished by a crash failed, not rerun', async (t) => {
  const store = tempStore(t);
  const base = { kind: 'sync' as const, ref: 'refs/heads/main', error: null, commit: null, createdAt: 1, finishedAt: null };
  const queued = await store.createJob({ ...base, repo: 'a/a', state: 'queued', phase: 'queued', startedAt: null });
  const running = await store.createJob({ ...base, repo: 'b/b', state: 'running', phase: 'fetching', startedAt: 2 });
  const done = await store.createJob({ ...base, repo: 'c/c', state: 'succeeded', phase: 'done', startedAt: 2, finishedAt: 3 });

  const r = gatedRunner();
  const q = new LocalJobQueue(store, r.runner, { concurrency: 2 });
  // Until its owner knows it is the data dir's one server, these may be another server's live jobs.
  assert.deepEqual(await store.getJob(queued.id), queued);
  assert.deepEqual(await store.getJob(running.id), running);
  assert.deepEqual((await q.recover()).map((j) => j.id), [queued.id, running.id]);
  for (const id of [queued.id, running.id]) {
    const j = (await store.getJob(id))!;
    assert.equal(j.state, 'failed');
    assert.equal(j.error, INTERRUPTED);
    assert.ok(j.finishedAt !== null);
    assert.deepEqual(await q.wait(id), j);
  }
  assert.equal((await store.getJob(running.id))!.phase, 'fetching', 'the phase it died in is kept');
  assert.deepEqual(await store.getJob(done.id), done);
  assert.deepEqual(await store.unfinishedJobs(), []);
  await sleep(10);
  assert.equal(r.calls.length, 0, 'nothing is rerun');

  // The same request is queued afresh, not joined to the dead job.
  const again = await q.enqueue({ repo: 'a/a', ref: 'refs/heads/main' });
  assert.notEqual(again.id, queued.id);
  const other = await q.enqueue({ repo: 'd/d', ref: 'refs/heads/main' });
  await r.started(again.id);
  // A second recover() leaves this queue's own running and queued jobs alone.
  assert.deepEqual(await q.recover(), []);
  assert.equal((await store.getJob(again.id))!.state, 'running');
  r.release(again.id);
  r.release(other.id);
  assert.equal((await q.wait(again.id)).state, 'succeeded');
  assert.equal((await q.wait(other.id)).state, 'succeeded');
  await q.close();
});

test('a stored error is one line without control characters or credentials', async (t) => {
  const store = tempStore(t);
  const q = new LocalJobQueue(store, async () => {
    throw new Error('git fetch failed: fatal: bad line\u0000\u001b[0m from https://u:pw123@host/x\nsecond line\r\n');
  });
  const job = await q.enqueue({ repo: 'a/a', ref: null });
  const final = await q.wait(job.id);
  assert.equal(final.error, 'git fetch failed: fatal: bad line[0m from https://u:***@host/x / second line');
  assert.deepEqual(await store.getJob(job.id), final);
  await q.close();
});

test('close stops starting jobs, waits for running ones, and fails queued ones', async (t) => {
  const store = tempStore(t);
  const r = gatedRunner();
  const q = new LocalJobQueue(store, r.runner, { concurrency: 1 });
  const running = await q.enqueue({ repo: 'a/a', ref: 'refs/heads/main' });
  const queued = await q.enqueue({ repo: 'b/b', ref: 'refs/heads/main' });
  await r.started(running.id);
  const queuedWait = q.wait(queued.id);

  let closed = false;
  const closing = q.close().then(() => (closed = true));
  await sleep(20);
  assert.equal(closed, false, 'close waits for the running job');
  await assert.rejects(async () => await q.enqueue({ repo: 'c/c', ref: null }), SnapError);
  const cancelled = await queuedWait;
  assert.equal(cancelled.state, 'failed');
  assert.equal(cancelled.error, CANCELLED);

  r.release(running.id);
  await closing;
  assert.equal((await store.getJob(running.id))!.state, 'succeeded');
  assert.deepEqual(r.calls.map((j) => j.id), [running.id], 'the queued job never started');
  assert.deepEqual(await store.unfinishedJobs(), []);
  await q.close(); // idempotent
});

test('concurrency must be a positive integer', async (t) => {
  const store = tempStore(t);
  const runner: JobRunner = async () => ({ commit: null });
  for (const concurrency of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => new LocalJobQueue(store, runner, { concurrency }), SnapError);
  }
});

test('stats: queued and running from memory, the oldest queued job, no dead letters', async (t) => {
  const store = tempStore(t);
  const r = gatedRunner();
  const q = new LocalJobQueue(store, r.runner, {});
  assert.deepEqual(await q.stats(), { queued: 0, running: 0, dead: 0, oldestQueuedAt: null });
  const j1 = await q.enqueue({ repo: 'a/a', ref: null });
  await r.started(j1.id);
  const j2 = await q.enqueue({ repo: 'a/a', ref: 'refs/heads/x' });
  await q.enqueue({ repo: 'b/b', ref: null });
  assert.deepEqual(await q.stats(), { queued: 2, running: 1, dead: 0, oldestQueuedAt: j2.createdAt });
  r.release(j1.id);
  await q.wait(j1.id);
  const after = await q.stats();
  assert.equal(after.queued + after.running, 2);
  for (const id of [j1.id, j2.id, j2.id + 1]) r.release(id);
  await q.close();
  assert.deepEqual(await q.stats(), { queued: 0, running: 0, dead: 0, oldestQueuedAt: null });
});
