/**
 * The GC handshake with job claims (metadata gcBeginDelete; pg-queue claim and gcStartJob): a
 * GC delete phase and a job start never both succeed. Raced for real: on PostgreSQL from
 * separate connection pools (as separate servers and workers), on SQLite from two store handles
 * on one file (as two processes), many rounds each, both orders of arrival.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PgJobQueue } from '../../src/queue/postgres/pg-queue.js';
import { PostgresMetadataStore } from '../../src/metadata/postgres/pg-store.js';
import { SqliteMetadataStore } from '../../src/metadata/sqlite/sqlite-store.js';
import { LocalJobQueue } from '../../src/queue/local/local-queue.js';
import type { MetadataStore } from '../../src/metadata/metadata-store.js';
import { postgresSkipReason, startPostgres, type PostgresServer } from '../support/postgres.js';

const ROUNDS = 60;

function job(repo: string) {
  return { repo, kind: 'sync' as const, ref: null, state: 'queued' as const, phase: 'queued', error: null, commit: null, createdAt: Date.now(), startedAt: null, finishedAt: null };
}

describe('GC handshake on PostgreSQL', { skip: postgresSkipReason() ?? false, timeout: 180_000 }, () => {
  let server: PostgresServer;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.stop();
  });

  test('a claim and a GC delete phase raced: never both; a claim during the phase gets nothing, after it the job', async () => {
    const url = await server.createDatabase();
    const gcStore = await PostgresMetadataStore.open(url);
    const workerStore = await PostgresMetadataStore.open(url);
    const queue = new PgJobQueue(workerStore);
    let both = 0;
    let gcWon = 0;
    let claimWon = 0;
    try {
      for (let i = 0; i < ROUNDS; i++) {
        await queue.enqueue({ repo: `r/${i}`, ref: null });
        const owner = `gc-${i}`;
        // Alternate which one is sent first; both are in flight at once.
        const [deleting, lease] =
          i % 2 === 0
            ? await Promise.all([gcStore.gcBeginDelete(owner, 60_000, 0), queue.claim('w', 60_000)])
            : await Promise.all([queue.claim('w', 60_000), gcStore.gcBeginDelete(owner, 60_000, 0)]).then(([l, d]) => [d, l] as const);
        if (deleting && lease) both++;
        if (deleting) {
          gcWon++;
          assert.equal(await queue.claim('w', 60_000), null, 'no claim while deleting');
          await gcStore.gcEndDelete(owner);
          const late = await queue.claim('w', 60_000);
          assert.ok(late, 'the job is claimed once the delete phase ends');
          await queue.complete(late, { commit: null });
        } else {
          assert.ok(lease, 'one of the two always wins');
          claimWon++;
          await queue.complete(lease, { commit: null });
        }
      }
    } finally {
      await queue.close();
      await workerStore.close();
      await gcStore.close();
    }
    assert.equal(both, 0, `both succeeded in ${both} of ${ROUNDS} rounds`);
    console.log(`pg handshake: ${ROUNDS} rounds, gc first ${gcWon}, claim first ${claimWon}, overlaps ${both}`);
  });

  test('a crashed pass does not block builds forever: the flag expires', async () => {
    const url = await server.createDatabase();
    const store = await PostgresMetadataStore.open(url);
    const queue = new PgJobQueue(store);
    try {
      await queue.enqueue({ repo: 'r/x', ref: null });
      assert.equal(await store.gcBeginDelete('dead-pass', 300, 0), true);
      assert.equal(await queue.claim('w', 60_000), null);
      await new Promise((r) => setTimeout(r, 400));
      assert.ok(await queue.claim('w', 60_000));
      assert.equal(await store.gcRenewDelete('dead-pass', 1000), false, 'an expired flag cannot be renewed');
    } finally {
      await queue.close();
      await store.close();
    }
  });
});

describe('GC handshake on SQLite', () => {
  test('gcStartJob and gcBeginDelete raced from two handles: never both', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snapclone-gc-hs-'));
    const a = new SqliteMetadataStore(join(dir, 'm.db'));
    const b = new SqliteMetadataStore(join(dir, 'm.db'));
    let both = 0;
    try {
      for (let i = 0; i < ROUNDS; i++) {
        const j = await a.createJob(job(`r/${i}`));
        const owner = `gc-${i}`;
        const [started, deleting] = i % 2 ? await Promise.all([a.gcStartJob(j.id, 'starting', Date.now()), b.gcBeginDelete(owner, 60_000, 0)]) : await Promise.all([b.gcBeginDelete(owner, 60_000, 0), a.gcStartJob(j.id, 'starting', Date.now())]).then(([d, s]) => [s, d]);
        if (started && deleting) both++;
        assert.ok(started || deleting);
        if (deleting) {
          assert.equal(await a.gcStartJob(j.id, 'starting', Date.now()), false);
          await b.gcEndDelete(owner);
          assert.equal(await a.gcStartJob(j.id, 'starting', Date.now()), true);
        }
        await a.updateJob(j.id, { state: 'succeeded', finishedAt: Date.now() });
      }
    } finally {
      await a.close();
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(both, 0);
  });

  test('the local queue holds a job back during a delete phase and runs it after', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snapclone-gc-lq-'));
    const store: MetadataStore = new SqliteMetadataStore(join(dir, 'm.db'));
    let ran = 0;
    const queue = new LocalJobQueue(store, async () => {
      ran++;
      return { commit: null };
    });
    try {
      assert.equal(await store.gcBeginDelete('gc', 60_000, 0), true);
      const j = await queue.enqueue({ repo: 'r/a', ref: null });
      await new Promise((r) => setTimeout(r, 350));
      assert.equal(ran, 0, 'not started while deleting');
      assert.equal((await store.getJob(j.id))!.state, 'queued');
      assert.equal(await store.gcBeginDelete('other', 60_000, 0), false, 'one delete phase at a time');
      await store.gcEndDelete('gc');
      const done = await queue.wait(j.id);
      assert.equal(done.state, 'succeeded');
      assert.equal(ran, 1);
      // And the other way: a running job keeps a delete phase from starting.
      let release!: () => void;
      const q2 = new LocalJobQueue(store, () => new Promise((r) => (release = () => r({ commit: null }))));
      const j2 = await q2.enqueue({ repo: 'r/b', ref: null });
      while ((await store.getJob(j2.id))!.state !== 'running') await new Promise((r) => setTimeout(r, 20));
      assert.equal(await store.gcBeginDelete('gc', 60_000, 0), false, 'a job runs');
      release();
      await q2.wait(j2.id);
      assert.equal(await store.gcBeginDelete('gc', 60_000, 0), true);
      await store.gcEndDelete('gc');
      await q2.close();
    } finally {
      await queue.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
