/**
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
import type { JobRecord, RefRecord } from '../../src/metadata/metadata-store.js';
import { SnapError } from '../../src/util/errors.js';
import { sha256Hex } from '../../src/util/hash.js';

type Task =
  | { kind: 'publish'; dbPath: string; repo: string; refs: string[]; seqs: number[]; gate: SharedArrayBuffer }
  | { kind: 'seq'; dbPath: string; repo: string; count: number; gate: SharedArrayBuffer };

/** The upstream every test repository is registered for. */
const UPSTREAM = 'https://example.com/up.git';

function refRecord(repo: string, ref: string, seq: number): RefRecord {
  // Every field derives from seq, so the winner can be checked field by field.
  return {
    repo,
    ref,
    mode: 'full',
    commit: sha256Hex(`commit ${seq}`).slice(0, 40),
    seq,
    builtAt: 1_700_000_000_000 + seq,
    view: { tagsKey: sha256Hex(`view ${ref} ${seq}`), snapshot: seq, followedTags: [] },
  };
}

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

function shuffled(xs: number[]): number[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

function tempDb(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'snapclone-meta-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'meta.db');
}

function isCode(code: string) {
  return (err: unknown) => err instanceof SnapError && err.code === code;
}

/** Register repositories (publishRef only lands for a registered one) under UPSTREAM. */
async function register(store: SqliteMetadataStore, ...names: string[]): Promise<void> {
  for (const name of names) await store.addRepo({ name, url: UPSTREAM, defaultBranch: null, createdAt: 1 });
}

function newJob(repo: string, over: Partial<Omit<JobRecord, 'attempts'>> = {}): Omit<JobRecord, 'id' | 'attempts'> {
  return {
    repo,
    kind: 'sync',
    ref: 'refs/heads/main',
    state: 'queued',
    phase: 'queued',
    error: null,
    errorCode: null,
    commit: null,
    createdAt: 1_700_000_000_000,
    startedAt: null,
    finishedAt: null,
    ...over,
  };
}

function defineTests(): void {
  test('repos: add, get, list, set default branch', async (t) => {
    const store = new SqliteMetadataStore(tempDb(t));
    t.after(() => store.close());
    const express = { name: 'expressjs/express', url: 'https://github.com/expressjs/express.git', defaultBranch: null, createdAt: 1 };
    const git = { name: 'git/git', url: 'https://github.com/git/git.git', defaultBranch: 'master', createdAt: 2 };
    assert.equal(await store.getRepo('expressjs/express'), null);
    assert.deepEqual(await store.listRepos(), []);
    assert.equal(await store.addRepo(git), true);
    assert.equal(await store.addRepo(express), true);
    assert.equal(await store.addRepo({ ...express, url: 'https://evil.example/x.git' }), false, 'existing name is kept');
    assert.deepEqual(await store.getRepo('expressjs/express'), express);
    assert.deepEqual(await store.listRepos(), [express, git]);

    await store.setDefaultBranch('expressjs/express', 'master');
    assert.equal((await store.getRepo('expressjs/express'))!.defaultBranch, 'master');
    await store.setDefaultBranch('expressjs/express', null);
    assert.equal((await store.getRepo('expressjs/express'))!.defaultBranch, null);
    await assert.rejects(async () => await store.setDefaultBranch('no/such', 'main'), isCode('not-found'));
  });

  test('publishRef: insert, newer replaces, older and equal never do', async (t) => {
    const store = new SqliteMetadataStore(tempDb(t));
    t.after(() => store.close());
    await register(store, 'r', 'other');
    const main = 'refs/heads/main';
    assert.equal(await store.getRef('r', main), null);
    assert.equal(await store.publishRef(refRecord('r', main, 5), UPSTREAM), true);
    assert.deepEqual(await store.getRef('r', main), refRecord('r', main, 5));
    assert.equal(await store.publishRef(refRecord('r', main, 3), UPSTREAM), false);
    assert.equal(await store.publishRef({ ...refRecord('r', main, 5), view: { other: true } }, UPSTREAM), false);
    assert.deepEqual(await store.getRef('r', main), refRecord('r', main, 5));
    assert.equal(await store.publishRef(refRecord('r', main, 9), UPSTREAM), true);
    assert.deepEqual(await store.getRef('r', main), refRecord('r', main, 9));

    // A repo with no commits yet is a record with a null commit.
    const empty = { ...refRecord('r', 'refs/heads/empty', 1), commit: null };
    assert.equal(await store.publishRef(empty, UPSTREAM), true);
    assert.deepEqual(await store.getRef('r', 'refs/heads/empty'), empty);
    // Refs are per repository.
    assert.equal(await store.publishRef(refRecord('other', main, 1), UPSTREAM), true);
    assert.deepEqual(await store.listRefs('r'), [empty, refRecord('r', main, 9)]);
    assert.deepEqual(await store.listRefs('other'), [refRecord('other', main, 1)]);
    assert.deepEqual(await store.listRefs('none'), []);
    await assert.rejects(async () => await store.publishRef(refRecord('r', main, 10.5), UPSTREAM), isCode('invalid'));
  });

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

  test('jobs: create, update, get, list, unfinished', async (t) => {
    const store = new SqliteMetadataStore(tempDb(t));
    t.after(() => store.close());
    const j1 = await store.createJob(newJob('a/a'));
    const j2 = await store.createJob(newJob('a/a', { ref: null, createdAt: 1_700_000_000_001 }));
    const j3 = await store.createJob(newJob('b/b'));
    assert.ok(j1.id < j2.id && j2.id < j3.id);
    assert.deepEqual(await store.getJob(j1.id), j1);
    assert.equal(await store.getJob(9999), null);

    await store.updateJob(j1.id, { state: 'running', phase: 'fetching', startedAt: 10 });
    assert.deepEqual(await store.getJob(j1.id), { ...j1, state: 'running', phase: 'fetching', startedAt: 10 });
    await store.updateJob(j1.id, { state: 'failed', error: 'upstream unreachable', finishedAt: 20 });
    const failed = { ...j1, state: 'failed' as const, phase: 'fetching', startedAt: 10, error: 'upstream unreachable', finishedAt: 20 };
    assert.deepEqual(await store.getJob(j1.id), failed);
    // Explicit null clears a field; absent and undefined fields are left alone.
    await store.updateJob(j1.id, { error: null, commit: undefined });
    assert.deepEqual(await store.getJob(j1.id), { ...failed, error: null });
    await store.updateJob(j2.id, { state: 'succeeded', commit: 'c'.repeat(40), finishedAt: 30 });
    assert.equal((await store.getJob(j2.id))!.commit, 'c'.repeat(40));
    await assert.rejects(async () => await store.updateJob(9999, { phase: 'x' }), isCode('not-found'));
    await assert.rejects(async () => await store.updateJob(j3.id, { state: 'bogus' as JobRecord['state'] }));

    assert.deepEqual((await store.listJobs('a/a', 10)).map((j) => j.id), [j2.id, j1.id]);
    assert.deepEqual((await store.listJobs('a/a', 1)).map((j) => j.id), [j2.id]);
    assert.deepEqual(await store.listJobs('none', 10), []);
    assert.deepEqual(await store.unfinishedJobs(), [j3]);
  });

  test('reopening keeps everything; a newer schema is refused', async (t) => {
    const dbPath = tempDb(t);
    let store = new SqliteMetadataStore(dbPath);
    const repo = { name: 'a/a', url: 'https://example.com/a.git', defaultBranch: 'main', createdAt: 5 };
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

  test('publishRef lands only for a repository registered for the build\'s upstream', async (t) => {
    const store = new SqliteMetadataStore(tempDb(t));
    t.after(() => store.close());
    const main = 'refs/heads/main';
    assert.equal(await store.publishRef(refRecord('ghost', main, 1), UPSTREAM), false, 'never registered');
    assert.equal(await store.getRef('ghost', main), null);
    await register(store, 'r');
    assert.equal(await store.publishRef(refRecord('r', main, 1), 'https://example.com/elsewhere.git'), false, 'another upstream');
    assert.equal(await store.getRef('r', main), null);
    assert.equal(await store.publishRef(refRecord('r', main, 1), UPSTREAM), true);
    await store.setRepoUrl('r', 'https://example.com/moved.git');
    assert.equal(await store.publishRef(refRecord('r', main, 2), UPSTREAM), false, 'a build of the old upstream after a re-point');
    assert.deepEqual(await store.getRef('r', main), refRecord('r', main, 1));
    assert.equal(await store.publishRef(refRecord('r', main, 3), 'https://example.com/moved.git'), true);
    assert.equal((await store.getRepo('r'))!.url, 'https://example.com/moved.git');
    await assert.rejects(async () => await store.setRepoUrl('no/such', UPSTREAM), isCode('not-found'));
    assert.equal(await store.removeRef('r', main), true);
    assert.equal(await store.removeRef('r', main), false);
    assert.deepEqual(await store.listRefs('r'), []);
  });

  test('setLevels: an older sync\'s chain never replaces a newer one\'s; another upstream\'s chain is not read, and is replaced', async (t) => {
    const store = new SqliteMetadataStore(tempDb(t));
    t.after(() => store.close());
    await register(store, 'r');
    assert.equal(await store.setLevels('r', UPSTREAM, 6, ['newer']), true);
    assert.equal(await store.setLevels('r', UPSTREAM, 5, ['older']), false, 'a slower older sync wrote its chain last');
    assert.equal(await store.setLevels('r', UPSTREAM, 6, ['same seq']), false);
    assert.deepEqual(await store.getLevels('r', UPSTREAM), { seq: 6, levels: ['newer'] });
    assert.equal(await store.setLevels('r', 'https://example.com/other.git', 9, ['other']), false, 'not the registered upstream');
    await store.setRepoUrl('r', 'https://example.com/other.git');
    assert.equal(await store.getLevels('r', 'https://example.com/other.git'), null, 'a chain of the old URL is not the new one\'s');
    assert.equal(await store.setLevels('r', 'https://example.com/other.git', 2, ['other']), true, 'a smaller seq of the new upstream replaces the old upstream\'s chain');
    assert.deepEqual(await store.getLevels('r', 'https://example.com/other.git'), { seq: 2, levels: ['other'] });
    assert.equal(await store.putSnapshot({ repo: 'r', seq: 7, data: {}, createdAt: 1 }, UPSTREAM), false, 'a snapshot of the old upstream after a re-point');
    assert.equal(await store.latestSnapshot('r'), null);
  });

  test('setRepoUrl to another upstream: records, level chain, snapshots and composed manifests go in the same step; old builds cannot publish again', async (t) => {
    const store = new SqliteMetadataStore(tempDb(t));
    t.after(() => store.close());
    await register(store, 'r');
    const main = 'refs/heads/main';
    const seq = await store.nextSeq('r');
    assert.equal(await store.publishRef(refRecord('r', main, seq), UPSTREAM), true);
    assert.equal(await store.setLevels('r', UPSTREAM, seq, ['a-level']), true);
    await store.putSnapshot({ repo: 'r', seq, data: { a: 1 }, createdAt: 1 }, UPSTREAM);
    await store.putComposed('r', 'k', { digest: 'd', size: 1 });
    const other = 'https://example.com/b.git';
    await store.setRepoUrl('r', other, { newUpstream: true, defaultBranch: 'trunk' });
    assert.deepEqual(await store.listRefs('r'), []);
    assert.equal(await store.latestSnapshot('r'), null);
    assert.equal(await store.getComposed('r', 'k'), null);
    assert.equal((await store.getRepo('r'))!.defaultBranch, 'trunk');
    assert.equal(await store.setLevels('r', other, 1, ['b']), true);
    assert.deepEqual(await store.getLevels('r', other), { seq: 1, levels: ['b'] });
    // A build of B that fetched before the re-point (its seq) cannot publish main either.
    assert.equal(await store.publishRef(refRecord('r', main, seq), other), false);
    assert.equal(await store.publishRef(refRecord('r', main, await store.nextSeq('r')), other), true);
  });

  test('removeRepo: record, refs and finished jobs go in one step; unfinished jobs and the seq stay', async (t) => {
    const store = new SqliteMetadataStore(tempDb(t));
    t.after(() => store.close());
    await register(store, 'a/a', 'b/b');
    await store.nextSeq('a/a');
    await store.publishRef(refRecord('a/a', 'refs/heads/main', 1), UPSTREAM);
    await store.publishRef(refRecord('a/a', 'refs/tags/v1', 1), UPSTREAM);
    await store.publishRef(refRecord('b/b', 'refs/heads/main', 1), UPSTREAM);
    const done = await store.createJob(newJob('a/a', { state: 'succeeded' }));
    const failed = await store.createJob(newJob('a/a', { state: 'failed', error: 'x', errorCode: 'unreachable' }));
    const running = await store.createJob(newJob('a/a', { state: 'running' }));
    const queued = await store.createJob(newJob('a/a'));
    const other = await store.createJob(newJob('b/b', { state: 'succeeded' }));

    const removed = await store.removeRepo('a/a');
    assert.deepEqual(removed, { name: 'a/a', url: UPSTREAM, defaultBranch: null, createdAt: 1 });
    assert.equal(await store.removeRepo('a/a'), null);
    assert.equal(await store.getRepo('a/a'), null);
    assert.deepEqual(await store.listRefs('a/a'), []);
    assert.equal(await store.getJob(done.id), null);
    assert.equal(await store.getJob(failed.id), null);
    assert.deepEqual((await store.listJobs('a/a', 10)).map((j) => j.id), [queued.id, running.id]);
    // Nothing of another repository is touched.
    assert.equal((await store.listRefs('b/b')).length, 1);
    assert.deepEqual(await store.getJob(other.id), other);
    // A running build of the removed registration can no longer publish.
    assert.equal(await store.publishRef(refRecord('a/a', 'refs/heads/main', 5), UPSTREAM), false);
    // Registered again: seqs keep increasing, so old builds order before new ones.
    await register(store, 'a/a');
    assert.equal(await store.nextSeq('a/a'), 2);
  });

  test('a job keeps its error code', async (t) => {
    const store = new SqliteMetadataStore(tempDb(t));
    t.after(() => store.close());
    const j = await store.createJob(newJob('a/a'));
    assert.equal((await store.getJob(j.id))!.errorCode, null);
    await store.updateJob(j.id, { state: 'failed', error: 'no such ref', errorCode: 'not-found' });
    assert.equal((await store.getJob(j.id))!.errorCode, 'not-found');
    await store.updateJob(j.id, { phase: 'x' });
    assert.equal((await store.getJob(j.id))!.errorCode, 'not-found', 'absent fields are left alone');
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
    assert.deepEqual(await store.listRepos(), [{ name: 'old/one', url: '/srv/one/', defaultBranch: 'main', createdAt: 7 }]);
    const [job] = await store.listJobs('old/one', 10);
    assert.equal(job!.error, 'boom');
    assert.equal(job!.errorCode, null);
    const check = new Database(dbPath);
    t.after(() => check.close());
    assert.equal(check.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    assert.equal(SCHEMA_VERSION, 4);
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

  test('removeRef at a seq: only older records go; the tombstone blocks older publishes, never newer ones', async (t) => {
    const store = new SqliteMetadataStore(tempDb(t));
    t.after(() => store.close());
    await register(store, 'r');
    const dev = 'refs/heads/dev';
    assert.equal(await store.publishRef(refRecord('r', dev, 4), UPSTREAM), true);
    assert.equal(await store.publishRef({ ...refRecord('r', dev, 6), mode: 'shallow' as const }, UPSTREAM), true);
    // A sync at seq 5 saw dev deleted; a sync at seq 6 saw it created again and published first.
    assert.equal(await store.removeRef('r', dev, 5), true);
    assert.deepEqual((await store.getRefModes('r', dev)).map((r) => [r.mode, r.seq]), [['shallow', 6]]);
    assert.equal(await store.publishRef(refRecord('r', dev, 5), UPSTREAM), false, 'as old as the deletion');
    assert.equal(await store.publishRef(refRecord('r', dev, 7), UPSTREAM), true, 'newer than the deletion');
    assert.equal(await store.removeRef('r', dev, 3), false, 'an older deletion removes nothing');
    assert.equal(await store.publishRef(refRecord('r', dev, 8), UPSTREAM), true, 'and does not lower the tombstone');
  });

  test('records per mode; commit build stages never go back; snapshots are create-only; removeRef and removeRepo clear every mode', async (t) => {
    const store = new SqliteMetadataStore(tempDb(t));
    t.after(() => store.close());
    await register(store, 'r');
    const main = 'refs/heads/main';
    const shallow = { ...refRecord('r', main, 7), mode: 'shallow' as const };
    assert.equal(await store.publishRef(shallow, UPSTREAM), true);
    assert.equal(await store.publishRef(refRecord('r', main, 6), UPSTREAM), true, 'modes are independent');
    assert.equal(await store.publishRef({ ...shallow, seq: 6 }, UPSTREAM), false);
    assert.deepEqual(await store.getRefModes('r', main), [refRecord('r', main, 6), shallow]);
    assert.deepEqual(await store.getRef('r', main, 'shallow'), shallow);
    assert.equal(await store.getRef('r', main, 'files'), null);

    const c = 'a'.repeat(40);
    await store.putCommitBuild('r', c, 'shallow', { n: 1 });
    assert.deepEqual(await store.getCommitBuild('r', c), { stage: 'shallow', data: { n: 1 } });
    await store.putCommitBuild('r', c, 'files', { n: 2 });
    await store.putCommitBuild('r', c, 'shallow', { n: 3 }); // a late shallow stage never replaces the complete build
    assert.deepEqual(await store.getCommitBuild('r', c), { stage: 'files', data: { n: 2 } });
    await store.putCommitBuild('r', 'b'.repeat(40), 'files', { n: 4 });
    assert.deepEqual(await store.recentCommitBuilds('r', 1), [{ n: 4 }]);
    assert.equal((await store.recentCommitBuilds('r', 10)).length, 2);

    assert.equal(await store.getLevels('r', UPSTREAM), null);
    assert.equal(await store.setLevels('r', UPSTREAM, 3, [{ tips: ['x'] }]), true);
    assert.deepEqual(await store.getLevels('r', UPSTREAM), { seq: 3, levels: [{ tips: ['x'] }] });
    await store.putSnapshot({ repo: 'r', seq: 3, data: { a: 1 }, createdAt: 1 }, UPSTREAM);
    await store.putSnapshot({ repo: 'r', seq: 3, data: { a: 2 }, createdAt: 2 }, UPSTREAM);
    await store.putSnapshot({ repo: 'r', seq: 2, data: { a: 0 }, createdAt: 3 }, UPSTREAM);
    assert.deepEqual(await store.getSnapshot('r', 3), { repo: 'r', seq: 3, data: { a: 1 }, createdAt: 1 });
    assert.equal((await store.latestSnapshot('r'))!.seq, 3);
    await store.putComposed('r', 'k', { digest: 'd', size: 1 });
    assert.deepEqual(await store.getComposed('r', 'k'), { digest: 'd', size: 1 });

    assert.equal(await store.removeRef('r', main), true);
    assert.deepEqual(await store.getRefModes('r', main), []);
    // A build that fetched before the removal cannot bring the ref back; a later fetch can.
    const now = await store.nextSeq('r');
    assert.equal(await store.removeRef('r', main), false);
    assert.equal(await store.publishRef(refRecord('r', main, now), UPSTREAM), false, 'a build from before the removal resurrected the ref');
    assert.equal(await store.publishRef(refRecord('r', main, now + 1), UPSTREAM), true);
    await store.removeRepo('r');
    assert.deepEqual(await store.listRefs('r'), []);
    assert.equal(await store.getCommitBuild('r', c), null);
    assert.equal(await store.getLevels('r', UPSTREAM), null);
    assert.equal(await store.latestSnapshot('r'), null);
    assert.equal(await store.getComposed('r', 'k'), null);
  });
}
