/**
 * A server on the shared queue builds only the jobs it happens to claim, so its own mirror is as
 * stale as its last build: what the refs are must come from the database. Here another "worker"
 * (a SyncService on the same PostgreSQL and store, with its own mirror) syncs a branch the
 * server's mirror has never seen; a clone of that branch must be built on demand, not refused.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PostgresMetadataStore } from '../../src/metadata/postgres/pg-store.js';
import { LocalArtifactStore } from '../../src/storage/local/local-store.js';
import { SyncService } from '../../src/serve/sync.js';
import { startPostgres, postgresSkipReason, type PostgresServer } from '../support/postgres.js';
import { addAndBuild, call, cleanup, git, makeUpstream, startTestServer, tempDir } from './helpers.js';

const skip = postgresSkipReason();
let pg: PostgresServer | null = null;
let dir: string;

before(async () => {
  if (skip) return;
  pg = await startPostgres();
  dir = tempDir('snapclone-shared-refs-');
});

after(async () => {
  await pg?.stop();
  if (dir) cleanup(dir);
});

test('with a shared queue, a branch another process fetched is known to this server (its mirror is stale)', { timeout: 60_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const dbUrl = await pg!.createDatabase();
  const saved = process.env.SNAPCLONE_DATABASE_URL;
  process.env.SNAPCLONE_DATABASE_URL = dbUrl;
  t.after(() => (saved === undefined ? delete process.env.SNAPCLONE_DATABASE_URL : (process.env.SNAPCLONE_DATABASE_URL = saved)));
  const up = makeUpstream(dir);
  const s = await startTestServer({ dataDir: join(dir, 'server'), pollSeconds: 0 });
  t.after(() => s.close());
  await addAndBuild(s.url, up.dir, 'r'); // the server claimed this one: its mirror has main, dev, v1

  // Another worker, same database and store, its own mirror: it fetches a new branch.
  git(up.dir, ['branch', 'feature']);
  const meta = await PostgresMetadataStore.open(dbUrl);
  t.after(() => meta.close());
  const other = new SyncService(join(dir, 'worker'), new LocalArtifactStore(join(s.dataDir, 'artifacts')), meta);
  const job = await meta.createJob({ repo: 'r', kind: 'sync', ref: null, state: 'running', phase: 'test', error: null, commit: null, createdAt: Date.now(), startedAt: Date.now(), finishedAt: null });
  await other.run(job, () => {});
  await meta.updateJob(job.id, { state: 'succeeded', finishedAt: Date.now() });

  const r = await call(s.url, 'GET', '/v1/repos/r/resolve?ref=feature&mode=shallow');
  assert.equal(r.status, 202, `an on-demand build of the branch the database knows, not a 404: ${r.text}`);
});
