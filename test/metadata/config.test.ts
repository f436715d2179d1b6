import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openMetadataStore } from '../../src/metadata/config.js';
import { PostgresMetadataStore } from '../../src/metadata/postgres/pg-store.js';
import { SqliteMetadataStore } from '../../src/metadata/sqlite/sqlite-store.js';
import { SnapError } from '../../src/util/errors.js';
import { postgresSkipReason, startPostgres, type PostgresServer } from '../support/postgres.js';

const skip = postgresSkipReason();

test('without SNAPCLONE_DATABASE_URL the local store is opened; a URL of another scheme is refused without its password', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'snapclone-metacfg-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const local = await openMetadataStore({}, () => new SqliteMetadataStore(join(dir, 'm.db')));
  assert.ok(local instanceof SqliteMetadataStore);
  await local.close();
  await assert.rejects(
    openMetadataStore({ SNAPCLONE_DATABASE_URL: 'mysql://u:hunter2@db/x' }, () => assert.fail('not local')),
    (e) => e instanceof SnapError && e.code === 'invalid' && !e.message.includes('hunter2') && /postgres:\/\//.test(e.message),
  );
});

describe('SNAPCLONE_DATABASE_URL on a real PostgreSQL', { skip: skip ?? false }, () => {
  let pg: PostgresServer;
  before(async () => {
    pg = await startPostgres();
  });
  after(async () => {
    await pg?.stop();
  });

  test('a postgres:// URL selects PostgreSQL', async () => {
    const store = await openMetadataStore({ SNAPCLONE_DATABASE_URL: await pg.createDatabase() }, () => assert.fail('not local'));
    assert.ok(store instanceof PostgresMetadataStore);
    await store.ping!();
    await store.close();
  });

  test('an unreachable or refused database is one clear error, without the password', async () => {
    const port = new URL(pg.url).port;
    await assert.rejects(
      PostgresMetadataStore.open(`postgres://postgres:hunter2@127.0.0.1:1/postgres`, { connectTimeoutSeconds: 2 }),
      (e) => e instanceof SnapError && e.code === 'unreachable' && !e.message.includes('hunter2') && !e.message.includes('\n'),
    );
    await assert.rejects(
      PostgresMetadataStore.open(`postgres://postgres:hunter2@127.0.0.1:${port}/no_such_db`),
      (e) => e instanceof SnapError && /no_such_db/.test(e.message) && !e.message.includes('hunter2'),
    );
  });
});
