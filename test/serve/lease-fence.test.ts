/**
 * A worker that lost its lease between its fetch and its seq stamp (paused, cut off from the
 * database) must not stamp after the worker that took its job over, or it would publish its
 * older fetch as newer. Two SyncServices on one PostgreSQL and one store play the two workers;
 * the first is held just before its stamp while its lease runs out and the second builds.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PostgresMetadataStore } from '../../src/metadata/postgres/pg-store.js';
import type { MetadataStore } from '../../src/metadata/metadata-store.js';
import { PgJobQueue } from '../../src/queue/postgres/pg-queue.js';
import { LocalArtifactStore } from '../../src/storage/local/local-store.js';
import { SyncService } from '../../src/serve/sync.js';
import { SnapError } from '../../src/util/errors.js';
import { startPostgres, postgresSkipReason, type PostgresServer } from '../support/postgres.js';
import { cleanup, commit, makeUpstream, tempDir } from './helpers.js';

const skip = postgresSkipReason();
let pg: PostgresServer | null = null;
let dir: string;

before(async () => {
  if (skip) return;
  pg = await startPostgres();
  dir = tempDir('snapclone-lease-fence-');
});

after(async () => {
  await pg?.stop();
  if (dir) cleanup(dir);
});

test('a stale lease holder cannot stamp its seq after the new holder: the newer fetch stays published', { timeout: 60_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const meta = await PostgresMetadataStore.open(await pg!.createDatabase());
  t.after(() => meta.close());
  const up = makeUpstream(dir);
  await meta.addRepo({ name: 'r', url: up.dir, defaultBranch: null, createdAt: Date.now(), visibility: 'public' });
  const store = new LocalArtifactStore(join(dir, 'artifacts'));
  const queue = new PgJobQueue(meta);
  t.after(() => queue.close());

  // Worker A's view of the database: its stamp waits at a gate (the pause).
  let atGate!: () => void;
  const reached = new Promise<void>((r) => (atGate = r));
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const pausedMeta = new Proxy(meta, {
    get(target, prop, receiver) {
      if (prop === 'nextSeq')
        return async (...args: Parameters<MetadataStore['nextSeq']>) => {
          atGate();
          await gate;
          return target.nextSeq(...args);
        };
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as MetadataStore;
  const workerA = new SyncService(join(dir, 'worker-a'), store, pausedMeta);
  const workerB = new SyncService(join(dir, 'worker-b'), store, meta);

  const job = await queue.enqueue({ repo: 'r', ref: null });
  const leaseA = (await queue.claim('A', 1000))!;
  assert.equal(leaseA.job.id, job.id);
  const runA = workerA.run(leaseA.job, () => {}, { job: leaseA.job.id, token: leaseA.token });
  runA.catch(() => {});
  await reached; // A fetched the upstream at up.head and waits to stamp

  const newer = commit(up.dir, { 'later.txt': 'pushed while A was paused\n' }, 'later');
  await new Promise((r) => setTimeout(r, 1300)); // A's lease runs out
  const leaseB = (await queue.claim('B', 30_000))!;
  assert.equal(leaseB?.job.id, job.id, 'B reclaims the job');
  await workerB.run(leaseB.job, () => {}, { job: leaseB.job.id, token: leaseB.token });
  assert.equal(await queue.complete(leaseB, { commit: newer }), true);

  release();
  await assert.rejects(runA, (err: unknown) => err instanceof SnapError && err.code === 'conflict' && /lost its lease/.test(err.message));
  for (const mode of ['shallow', 'files', 'full'] as const) {
    assert.equal((await meta.getRef('r', 'refs/heads/main', mode))?.commit, newer, `${mode}: B's newer fetch stays published`);
  }
  assert.equal(await queue.complete(leaseA, { commit: up.head }), false, "A's late ack is refused");
});
