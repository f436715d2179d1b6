/**
 * SQLite-only tests (schema file, WAL, worker threads racing on one file); the semantics every
 * store shares are in store-suite.ts, run here on SQLite.
 * This file is also the worker script for the multi-writer tests: run as a
 * worker thread it opens its own connection to the shared database file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { MIGRATIONS, SqliteMetadataStore, SCHEMA_VERSION } from '../../src/metadata/sqlite/sqlite-store.js';
import { sha256Hex } from '../../src/util/hash.js';
import { UPSTREAM, defineStoreSuite, isCode, newJob, refRecord, register, shuffled } from './store-suite.js';

type Task =
  | { kind: 'publish'; dbPath: string; repo: string; refs: string[]; seqs: number[]; gate: SharedArrayBuffer }
  | { kind: 'seq'; dbPath: string; repo: string; count: number; gate: SharedArrayBuffer };

async function workerMain(task: Task): Promise<unknown> {
  const store = new SqliteMetadataStore(task.dbPath);
  try {
    // Hold every worker at the gate until all are open, so their writes really interleave.
    const gate = new Int32Array(task.gate);
    Atomics.add(gate, 0, 1);
    Atomics.notify(gate, 0);
    while (Atomics.load(gate, 1) === 0) Atomics.wait(gate, 1, 0, 50);
    if (task.kind === 'seq') {
      const out: number[] = [];
      for (let i = 0; i < task.count; i++) out.push(await store.nextSeq(task.repo));
      return out;
    }
    const applied: Array<[string, number]> = [];
    for (const seq of task.seqs) {
      for (const ref of task.refs) {
        if (await store.publishRef(refRecord(task.repo, ref, seq), UPSTREAM)) applied.push([ref, seq]);
      }
      // Step aside now and then, or the busy handler's backoff lets one writer hog the lock.
      Atomics.wait(gate, 2, 0, Math.random() < 0.5 ? 1 : 0);
    }
    return applied;
  } finally {
    await store.close();
  }
}

if (!isMainThread) {
  parentPort!.postMessage(await workerMain(workerData as Task));
} else {
  defineTests();
}

/** Run tasks in worker threads released together; resolves with each worker's result. */
async function runWorkers<T>(tasks: Array<(gate: SharedArrayBuffer) => Task>): Promise<T[]> {
  const gateBuf = new SharedArrayBuffer(12); // [arrived, released, always 0: a sleep slot]
  const gate = new Int32Array(gateBuf);
  const results = tasks.map(
    (make) =>
      new Promise<T>((resolve, reject) => {
        const w = new Worker(new URL(import.meta.url), { workerData: make(gateBuf) });
        w.once('message', resolve);
        w.once('error', reject);
        w.once('exit', (code) => code !== 0 && reject(new Error(`worker exited with ${code}`)));
      }),
  );
  while (Atomics.load(gate, 0) < tasks.length) await new Promise((r) => setTimeout(r, 5));
  Atomics.store(gate, 1, 1);
  Atomics.notify(gate, 1);
  return Promise.all(results);
}

function tempDb(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'snapclone-meta-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'meta.db');
}

function defineTests(): void {
  test('publishRef race: concurrent writers with shuffled seqs leave the max seq', async (t) => {
    const dbPath = tempDb(t);
    const setup = new SqliteMetadataStore(dbPath); // create the schema once up front
    await register(setup, 'race/repo');
    setup.close();
    const refs = ['refs/heads/main', 'refs/tags/v1'];
    const seqs = Array.from({ length: 40 }, (_, i) => i + 1);
    const workers = 6;
    const results = await runWorkers<Array<[string, number]>>(
      Array.from({ length: workers }, () => (gate) => ({ kind: 'publish', dbPath, repo: 'race/repo', refs, seqs: shuffled(seqs), gate })),
    );

    const store = new SqliteMetadataStore(dbPath);
    t.after(() => store.close());
    for (const ref of refs) {
      assert.deepEqual(await store.getRef('race/repo', ref), refRecord('race/repo', ref, 40));
      // Every seq was offered by every worker; a conditional upsert lets each apply at most once.
      const applied = results.flat().filter(([r]) => r === ref).map(([, s]) => s);
      assert.equal(new Set(applied).size, applied.length, `no seq applied twice for ${ref}`);
      assert.ok(applied.includes(40));
    }
    // Within one worker, what it managed to apply must be increasing.
    for (const r of results) {
      for (const ref of refs) {
        const mine = r.filter(([x]) => x === ref).map(([, s]) => s);
        assert.deepEqual(mine, [...mine].sort((a, b) => a - b));
      }
    }
  });

  test('nextSeq: strictly increasing per repo, across connections and threads', async (t) => {
    const dbPath = tempDb(t);
    const a = new SqliteMetadataStore(dbPath);
    const b = new SqliteMetadataStore(dbPath);
    t.after(() => {
      a.close();
      b.close();
    });
    const seen: number[] = [];
    for (let i = 0; i < 10; i++) seen.push(await (i % 2 ? a : b).nextSeq('x/y'));
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.equal(await a.nextSeq('other/repo'), 1, 'each repo has its own counter');

    const count = 50;
    const perWorker = await runWorkers<number[]>(
      Array.from({ length: 4 }, () => (gate) => ({ kind: 'seq', dbPath, repo: 'x/y', count, gate })),
    );
    for (const got of perWorker) {
      for (let i = 1; i < got.length; i++) assert.ok(got[i]! > got[i - 1]!, 'increasing within a worker');
    }
    const all = perWorker.flat().sort((p, q) => p - q);
    assert.deepEqual(all, Array.from({ length: 4 * count }, (_, i) => 11 + i), 'no seq handed out twice or skipped');
    assert.equal(await b.nextSeq('x/y'), 11 + 4 * count);
  });

  test('reopening keeps everything; a newer schema is refused', async (t) => {
    const dbPath = tempDb(t);
    let store = new SqliteMetadataStore(dbPath);
    const repo = { name: 'a/a', url: 'https://example.com/a.git', defaultBranch: 'main', createdAt: 5, visibility: 'public' as const };
    await store.addRepo(repo);
    await store.nextSeq('a/a');
    await store.nextSeq('a/a');
    await store.publishRef(refRecord('a/a', 'refs/heads/main', 2), repo.url);
    const job = await store.createJob(newJob('a/a', { state: 'running' }));
    store.close();
    store.close(); // idempotent

    store = new SqliteMetadataStore(dbPath);
    assert.deepEqual(await store.listRepos(), [repo]);
    assert.deepEqual(await store.getRef('a/a', 'refs/heads/main'), refRecord('a/a', 'refs/heads/main', 2));
    assert.equal(await store.nextSeq('a/a'), 3);
    assert.deepEqual(await store.unfinishedJobs(), [job]);
    assert.ok((await store.createJob(newJob('a/a'))).id > job.id);
    store.close();

    const raw = new Database(dbPath);
    assert.equal(raw.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    assert.throws(() => new SqliteMetadataStore(dbPath), isCode('invalid'));
  });

  test('a version 1 database is migrated in place and keeps its data', async (t) => {
    const dbPath = tempDb(t);
    const raw = new Database(dbPath);
    raw.exec(MIGRATIONS[0]!);
    raw.pragma('user_version = 1');
    raw.prepare(`INSERT INTO repos VALUES ('old/one', '/srv/one/', 'main', 7)`).run();
    raw
      .prepare(`INSERT INTO jobs (repo, kind, ref, state, phase, error, commit_oid, created_at, started_at, finished_at)
                VALUES ('old/one', 'sync', NULL, 'failed', 'fetching', 'boom', NULL, 1, 2, 3)`)
      .run();
    raw.close();
    const store = new SqliteMetadataStore(dbPath);
    t.after(() => store.close());
    assert.deepEqual(await store.listRepos(), [{ name: 'old/one', url: '/srv/one/', defaultBranch: 'main', createdAt: 7, visibility: 'public' }]);
    const [job] = await store.listJobs('old/one', 10);
    assert.equal(job!.error, 'boom');
    assert.equal(job!.errorCode, null);
    const check = new Database(dbPath);
    t.after(() => check.close());
    assert.equal(check.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    assert.equal(SCHEMA_VERSION, 6); // 5: access (repos.visibility, private_artifacts); 6: gc (composed manifests' record, gc_unreachable, gc_state)
  });

  test('a version 2 database keeps its builds: a ref row becomes a full record serving its manifest as it is', async (t) => {
    const dbPath = tempDb(t);
    const raw = new Database(dbPath);
    raw.exec(MIGRATIONS[0]!);
    raw.exec(MIGRATIONS[1]!);
    raw.pragma('user_version = 2');
    raw.prepare(`INSERT INTO repos VALUES ('old/one', '/srv/one/', 'main', 7)`).run();
    const digest = sha256Hex('a v1 manifest');
    const commit = 'c'.repeat(40);
    raw.prepare(`INSERT INTO refs VALUES ('old/one', 'refs/heads/main', ?, ?, 1234, 5, 99, 30, 20, 10)`).run(commit, digest);
    raw.close();
    const store = new SqliteMetadataStore(dbPath);
    t.after(() => store.close());
    assert.deepEqual(await store.listRefs('old/one'), [
      {
        repo: 'old/one',
        ref: 'refs/heads/main',
        mode: 'full',
        commit,
        seq: 5,
        builtAt: 99,
        view: {
          defaultBranch: null,
          refs: [],
          followedTags: [],
          tagPack: null,
          tagsKey: '',
          snapshot: null,
          legacy: { manifest: digest, manifestSize: 1234, sizes: { editable: 30, shallow: 20, files: 10 } },
        },
      },
    ]);
    assert.equal(await store.getRef('old/one', 'refs/heads/main', 'shallow'), null);
  });

  test('attempts: derived from the start (the local queue runs a job once); SQLite never writes dead', async (t) => {
    const dbPath = tempDb(t);
    const store = new SqliteMetadataStore(dbPath);
    t.after(() => store.close());
    const j = await store.createJob(newJob('a/a'));
    assert.equal(j.attempts, 0);
    await store.updateJob(j.id, { state: 'running', startedAt: 5 });
    assert.equal((await store.getJob(j.id))!.attempts, 1);
    const started = await store.createJob(newJob('a/a', { state: 'running', startedAt: 3 }));
    assert.equal(started.attempts, 1);
    assert.deepEqual(await store.getJob(started.id), started);
    // SQLite never writes 'dead' (its schema refuses it), and updateJob cannot set one.
    await assert.rejects(async () => await store.updateJob(j.id, { state: 'dead' }));
    assert.equal((await store.getJob(j.id))!.state, 'running');
  });
}

const suiteDirs: string[] = [];
if (isMainThread) {
  defineStoreSuite('SQLite', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snapclone-meta-'));
    suiteDirs.push(dir);
    return new SqliteMetadataStore(join(dir, 'meta.db'));
  });
  process.once('exit', () => {
    for (const dir of suiteDirs) rmSync(dir, { recursive: true, force: true });
  });
}
