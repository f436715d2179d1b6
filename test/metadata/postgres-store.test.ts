/**
 * The PostgreSQL metadata store against a real server (test/support/postgres.ts): the shared
 * suite, plus what only a shared database has: migrations under concurrent start-up, and many
 * connections racing the conditional writes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import postgres from 'postgres';
import { PostgresMetadataStore, SCHEMA_VERSION } from '../../src/metadata/postgres/pg-store.js';
import { postgresSkipReason, startPostgres, type PostgresServer } from '../support/postgres.js';
import { UPSTREAM, defineStoreSuite, isCode, newJob, refRecord, register, shuffled } from './store-suite.js';

// Throws (the file fails) when SNAPCLONE_REQUIRE_SERVERS=1 and PostgreSQL is missing.
const skip = postgresSkipReason();

describe('PostgreSQL metadata store', { skip: skip ?? false }, () => {
  let pg: PostgresServer;
  before(async () => {
    pg = await startPostgres();
  });
  after(async () => {
    await pg?.stop();
  });

  defineStoreSuite('PostgreSQL', async () => PostgresMetadataStore.open(await pg.createDatabase()));

  /** `count` stores (each its own pool) on one fresh database. */
  async function stores(t: { after: (fn: () => Promise<void>) => void }, count: number, url?: string): Promise<PostgresMetadataStore[]> {
    const db = url ?? (await pg.createDatabase());
    const all = await Promise.all(Array.from({ length: count }, () => PostgresMetadataStore.open(db)));
    t.after(async () => {
      await Promise.all(all.map((s) => s.close()));
    });
    return all;
  }

  test('5 processes starting at once migrate once; reopening keeps everything; a newer schema is refused', async (t) => {
    const url = await pg.createDatabase();
    const first = await stores(t, 5, url);
    const rows = await first[0]!.sql<{ version: number }[]>`SELECT version FROM schema_migrations ORDER BY version`;
    assert.deepEqual(rows.map((r) => r.version), Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));

    const repo = { name: 'a/a', url: 'https://example.com/a.git', defaultBranch: 'main', createdAt: 5, visibility: 'public' as const };
    await first[1]!.addRepo(repo);
    await first[2]!.nextSeq('a/a');
    await first[3]!.nextSeq('a/a');
    await first[4]!.publishRef(refRecord('a/a', 'refs/heads/main', 2), repo.url);
    const job = await first[0]!.createJob(newJob('a/a', { state: 'running' }));
    await Promise.all(first.map((s) => s.close()));

    const again = await PostgresMetadataStore.open(url);
    t.after(() => again.close());
    assert.deepEqual(await again.listRepos(), [repo]);
    assert.deepEqual(await again.getRef('a/a', 'refs/heads/main'), refRecord('a/a', 'refs/heads/main', 2));
    assert.equal(await again.nextSeq('a/a'), 3);
    assert.deepEqual(await again.unfinishedJobs(), [job]);
    assert.ok((await again.createJob(newJob('a/a'))).id > job.id);
    assert.equal((await again.sql`SELECT 1 FROM schema_migrations`).count, SCHEMA_VERSION, 'nothing migrated twice');

    await again.sql`INSERT INTO schema_migrations (version) VALUES (${SCHEMA_VERSION + 1})`;
    await assert.rejects(PostgresMetadataStore.open(url), isCode('invalid'));
  });

  test('the jobs table is the one the queue relies on', async (t) => {
    const [store] = await stores(t, 1);
    const cols = await store!.sql<{ column_name: string; data_type: string; is_nullable: string }[]>`
      SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = 'jobs' ORDER BY ordinal_position`;
    assert.deepEqual(
      cols.map((c) => `${c.column_name} ${c.data_type}${c.is_nullable === 'NO' ? ' not null' : ''}`),
      [
        'id bigint not null',
        'repo text not null',
        'kind text not null',
        'ref text',
        'state text not null',
        'phase text not null',
        'error text',
        'error_code text',
        'commit_oid text',
        'created_at bigint not null',
        'started_at bigint',
        'finished_at bigint',
        'attempts integer not null',
        'lease_owner text',
        'lease_token text',
        'lease_until bigint',
      ],
    );
    const idx = await store!.sql<{ indexname: string; indexdef: string }[]>`
      SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'jobs' ORDER BY indexname`;
    assert.deepEqual(idx.map((i) => i.indexname), ['jobs_by_repo', 'jobs_one_queued', 'jobs_open', 'jobs_pkey']);
    // One queued job per (repo, ref), a null ref included; running ones do not count.
    await store!.createJob(newJob('a/a', { ref: null }));
    await assert.rejects(store!.createJob(newJob('a/a', { ref: null })), /jobs_one_queued/);
    await store!.createJob(newJob('a/a', { ref: null, state: 'running' }));
    await store!.createJob(newJob('a/a', { ref: 'refs/heads/x' }));
  });

  test('attempts and the dead state read back; a dead job is finished', async (t) => {
    const [store] = await stores(t, 1);
    await register(store!, 'a/a');
    const j = await store!.createJob(newJob('a/a'));
    assert.equal(j.attempts, 0);
    await store!.updateJob(j.id, { state: 'running', startedAt: 5 });
    assert.equal((await store!.getJob(j.id))!.attempts, 0, 'attempts count claims (the queue\'s), not updates');
    await store!.sql`UPDATE jobs SET attempts = 3, state = 'dead', error = 'lease expired 3 times' WHERE id = ${j.id}`;
    const dead = (await store!.getJob(j.id))!;
    assert.equal(dead.state, 'dead');
    assert.equal(dead.attempts, 3);
    assert.deepEqual(await store!.unfinishedJobs(), []);
    assert.deepEqual(await store!.listJobs('a/a', 5), [dead]);
    await store!.removeRepo('a/a');
    assert.equal(await store!.getJob(j.id), null, 'finished jobs go with the repository');
  });

  test('close ends every connection of the pool', async (t) => {
    const url = await pg.createDatabase();
    const store = await PostgresMetadataStore.open(url);
    await Promise.all(Array.from({ length: 8 }, () => store.nextSeq('x'))); // several connections busy at once
    const db = new URL(url).pathname.slice(1);
    const admin = postgres(pg.url, { max: 1, onnotice: () => {} });
    t.after(() => admin.end());
    const count = async () => (await admin<{ n: string }[]>`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = ${db}`)[0]!.n;
    assert.ok(Number(await count()) > 0);
    await store.close();
    assert.equal(Number(await count()), 0);
  });

  test('publishRef race: 6 connections with shuffled seqs leave the max seq; no seq applies twice', async (t) => {
    const all = await stores(t, 6);
    await register(all[0]!, 'race/repo');
    const refs = ['refs/heads/main', 'refs/tags/v1'];
    const seqs = Array.from({ length: 40 }, (_, i) => i + 1);
    const results = await Promise.all(
      all.map(async (store) => {
        const applied: Array<[string, number]> = [];
        for (const seq of shuffled(seqs)) {
          const wins = await Promise.all(refs.map((ref) => store.publishRef(refRecord('race/repo', ref, seq), UPSTREAM)));
          refs.forEach((ref, i) => wins[i] && applied.push([ref, seq]));
        }
        return applied;
      }),
    );
    for (const ref of refs) {
      assert.deepEqual(await all[0]!.getRef('race/repo', ref), refRecord('race/repo', ref, 40));
      const applied = results.flat().filter(([r]) => r === ref).map(([, s]) => s);
      assert.equal(new Set(applied).size, applied.length, `no seq applied twice for ${ref}`);
      assert.ok(applied.includes(40));
    }
    // Within one connection, what it managed to apply must be increasing.
    for (const r of results) {
      for (const ref of refs) {
        const mine = r.filter(([x]) => x === ref).map(([, s]) => s);
        assert.deepEqual(mine, [...mine].sort((a, b) => a - b));
      }
    }
  });

  test('nextSeq: strictly increasing across 4 connections, none handed out twice or skipped', async (t) => {
    const all = await stores(t, 4);
    const count = 50;
    const perStore = await Promise.all(
      all.map(async (store) => {
        const got: number[] = [];
        for (let i = 0; i < count; i++) got.push(await store.nextSeq('x/y'));
        return got;
      }),
    );
    for (const got of perStore) {
      for (let i = 1; i < got.length; i++) assert.ok(got[i]! > got[i - 1]!, 'increasing within a connection');
    }
    assert.deepEqual(perStore.flat().sort((p, q) => p - q), Array.from({ length: 4 * count }, (_, i) => 1 + i));
  });

  test('a publish racing a removeRef never outlives it (a build that fetched before the removal)', async (t) => {
    const [a, b] = await stores(t, 2);
    await register(a!, 'r');
    const rounds = 150;
    const survivors: string[] = [];
    await Promise.all(
      Array.from({ length: 3 }, async (_, lane) => {
        for (let i = 0; i < rounds / 3; i++) {
          const ref = `refs/heads/l${lane}-${i}`;
          const seq = await a!.nextSeq('r'); // the build fetched at seq; the removal comes at or after it
          await Promise.all([a!.publishRef(refRecord('r', ref, seq), UPSTREAM), b!.removeRef('r', ref)]);
          if ((await a!.getRefModes('r', ref)).length > 0) survivors.push(ref);
        }
      }),
    );
    assert.deepEqual(survivors, [], 'in either order the ref ends removed');
  });

  test('a publish racing a re-point to another upstream never leaves the old upstream\'s record', async (t) => {
    const [a, b] = await stores(t, 2);
    const other = 'https://example.com/other.git';
    const survivors: string[] = [];
    await Promise.all(
      Array.from({ length: 3 }, async (_, lane) => {
        for (let i = 0; i < 40; i++) {
          const name = `m${lane}-${i}`;
          await register(a!, name);
          const seq = await a!.nextSeq(name);
          await Promise.all([
            a!.publishRef(refRecord(name, 'refs/heads/main', seq), UPSTREAM),
            a!.putSnapshot({ repo: name, seq, data: { old: true }, createdAt: 1 }, UPSTREAM),
            b!.setRepoUrl(name, other, { newUpstream: true }),
          ]);
          if ((await a!.listRefs(name)).length > 0 || (await a!.latestSnapshot(name)) !== null) survivors.push(name);
        }
      }),
    );
    assert.deepEqual(survivors, [], 'none of the old upstream\'s records or snapshots survive the re-point');
  });

  test('a publish racing removeRepo never lands', async (t) => {
    const [a, b] = await stores(t, 2);
    const survivors: string[] = [];
    for (let i = 0; i < 60; i++) {
      const name = `gone${i}`;
      await register(a!, name);
      const seq = await a!.nextSeq(name);
      await Promise.all([a!.publishRef(refRecord(name, 'refs/heads/main', seq), UPSTREAM), b!.removeRepo(name)]);
      if ((await a!.listRefs(name)).length > 0) survivors.push(name);
    }
    assert.deepEqual(survivors, []);
  });

  test('a server that is not there: open fails', async () => {
    const url = new URL(pg.url);
    url.port = '1'; // nothing listens there
    await assert.rejects(PostgresMetadataStore.open(url.toString(), { connectTimeoutSeconds: 2 }));
  });
});
