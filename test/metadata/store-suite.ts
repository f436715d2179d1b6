/**
 * One test suite for every MetadataStore: the same semantics on SQLite and PostgreSQL.
 * `open` gives a fresh store on an empty database; the suite closes it.
 * Store-specific tests (file damage, schema files, multi-process races) live beside each store's runner.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { JobRecord, MetadataStore, NewJob, RefRecord } from '../../src/metadata/metadata-store.js';
import { SnapError } from '../../src/util/errors.js';
import { sha256Hex } from '../../src/util/hash.js';

/** The upstream every test repository is registered for. */
export const UPSTREAM = 'https://example.com/up.git';

export function refRecord(repo: string, ref: string, seq: number): RefRecord {
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

export function isCode(code: string) {
  return (err: unknown) => err instanceof SnapError && err.code === code;
}

/** Register repositories (publishRef only lands for a registered one) under UPSTREAM. */
export async function register(store: MetadataStore, ...names: string[]): Promise<void> {
  for (const name of names) await store.addRepo({ name, url: UPSTREAM, defaultBranch: null, createdAt: 1, visibility: 'public' });
}

export function newJob(repo: string, over: Partial<NewJob> = {}): NewJob & { errorCode: JobRecord['errorCode'] } {
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

export function shuffled<T>(xs: readonly T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

export function defineStoreSuite(name: string, open: () => Promise<MetadataStore>): void {
  /** A fresh store, closed when the test ends. */
  async function fresh(t: { after: (fn: () => Promise<void>) => void }): Promise<MetadataStore> {
    const store = await open();
    t.after(() => store.close());
    return store;
  }

  describe(`MetadataStore suite: ${name}`, () => {
    test('repos: add, get, list, set default branch', async (t) => {
      const store = await fresh(t);
      const express = { name: 'expressjs/express', url: 'https://github.com/expressjs/express.git', defaultBranch: null, createdAt: 1, visibility: 'public' as const };
      const git = { name: 'git/git', url: 'https://github.com/git/git.git', defaultBranch: 'master', createdAt: 2, visibility: 'public' as const };
      // Byte order, whatever the database's collation: 'Z' < '_' < 'a'.
      const upper = { name: 'Zed/z', url: 'https://example.com/z.git', defaultBranch: null, createdAt: 3, visibility: 'public' as const };
      const under = { name: '_x/x', url: 'https://example.com/x.git', defaultBranch: null, createdAt: 1_700_000_000_123, visibility: 'public' as const };
      assert.equal(await store.getRepo('expressjs/express'), null);
      assert.deepEqual(await store.listRepos(), []);
      assert.equal(await store.addRepo(git), true);
      assert.equal(await store.addRepo(express), true);
      assert.equal(await store.addRepo(under), true);
      assert.equal(await store.addRepo(upper), true);
      assert.equal(await store.addRepo({ ...express, url: 'https://evil.example/x.git' }), false, 'existing name is kept');
      assert.deepEqual(await store.getRepo('expressjs/express'), express);
      assert.deepEqual(await store.listRepos(), [upper, under, express, git]);

      await store.setDefaultBranch('expressjs/express', 'master');
      assert.equal((await store.getRepo('expressjs/express'))!.defaultBranch, 'master');
      await store.setDefaultBranch('expressjs/express', null);
      assert.equal((await store.getRepo('expressjs/express'))!.defaultBranch, null);
      await assert.rejects(async () => await store.setDefaultBranch('no/such', 'main'), isCode('not-found'));
    });

    test('publishRef: insert, newer replaces, older and equal never do', async (t) => {
      const store = await fresh(t);
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
      // Refs are per repository, listed by ref in byte order.
      assert.equal(await store.publishRef(refRecord('other', main, 1), UPSTREAM), true);
      assert.equal(await store.publishRef(refRecord('r', 'refs/heads/Main', 2), UPSTREAM), true);
      assert.deepEqual(await store.listRefs('r'), [refRecord('r', 'refs/heads/Main', 2), empty, refRecord('r', main, 9)]);
      assert.deepEqual(await store.listRefs('other'), [refRecord('other', main, 1)]);
      assert.deepEqual(await store.listRefs('none'), []);
      await assert.rejects(async () => await store.publishRef(refRecord('r', main, 10.5), UPSTREAM), isCode('invalid'));
      // Large seqs and timestamps round-trip as numbers.
      const big = { ...refRecord('r', main, 2 ** 40), builtAt: 2 ** 45 };
      assert.equal(await store.publishRef(big, UPSTREAM), true);
      assert.deepEqual(await store.getRef('r', main), big);
    });

    test('views and JSON data round-trip exactly', async (t) => {
      const store = await fresh(t);
      await register(store, 'r');
      // Key order, nesting, unicode, numbers and nulls as written.
      const view = { z: 1, a: [1.5, -0.25, null, 'ünï\u2028"\\'], nested: { b: true, a: false }, big: 9_007_199_254_740_991, '': {} };
      const rec = { ...refRecord('r', 'refs/heads/main', 1), view };
      assert.equal(await store.publishRef(rec, UPSTREAM), true);
      const got = await store.getRef('r', 'refs/heads/main');
      assert.equal(JSON.stringify(got!.view), JSON.stringify(view));
      await store.putCommitBuild('r', 'a'.repeat(40), 'files', view);
      assert.equal(JSON.stringify((await store.getCommitBuild('r', 'a'.repeat(40)))!.data), JSON.stringify(view));
      assert.equal(await store.putSnapshot({ repo: 'r', seq: 1, data: view, createdAt: 4 }, UPSTREAM), true);
      assert.equal(JSON.stringify((await store.latestSnapshot('r'))!.data), JSON.stringify(view));
      assert.equal(await store.setLevels('r', UPSTREAM, 1, view), true);
      assert.equal(JSON.stringify((await store.getLevels('r', UPSTREAM))!.levels), JSON.stringify(view));
    });

    test('nextSeq: strictly increasing per repo, durable across connections', async (t) => {
      const store = await fresh(t);
      const seen: number[] = [];
      for (let i = 0; i < 10; i++) seen.push(await store.nextSeq('x/y'));
      assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.equal(await store.nextSeq('other/repo'), 1, 'each repo has its own counter');
      // Many at once on one store: each handed out once, none skipped.
      const burst = await Promise.all(Array.from({ length: 30 }, () => store.nextSeq('x/y')));
      assert.deepEqual([...burst].sort((a, b) => a - b), Array.from({ length: 30 }, (_, i) => 11 + i));
    });

    test('jobs: create, update, get, list, unfinished', async (t) => {
      const store = await fresh(t);
      const j1 = await store.createJob(newJob('a/a'));
      const j2 = await store.createJob(newJob('a/a', { ref: null, createdAt: 1_700_000_000_001 }));
      const j3 = await store.createJob(newJob('b/b'));
      assert.ok(j1.id < j2.id && j2.id < j3.id);
      assert.equal(typeof j1.id, 'number');
      assert.deepEqual(j1, { ...newJob('a/a'), id: j1.id, attempts: 0 });
      assert.deepEqual(await store.getJob(j1.id), j1);
      assert.equal(await store.getJob(9999), null);

      await store.updateJob(j1.id, { state: 'running', phase: 'fetching', startedAt: 10 });
      const running = (await store.getJob(j1.id))!;
      assert.deepEqual({ ...running, attempts: 0 }, { ...j1, state: 'running', phase: 'fetching', startedAt: 10 });
      await store.updateJob(j1.id, { state: 'failed', error: 'upstream unreachable', finishedAt: 20 });
      const failed = { ...running, state: 'failed' as const, error: 'upstream unreachable', finishedAt: 20 };
      assert.deepEqual(await store.getJob(j1.id), failed);
      // Explicit null clears a field; absent and undefined fields are left alone.
      await store.updateJob(j1.id, { error: null, commit: undefined });
      assert.deepEqual(await store.getJob(j1.id), { ...failed, error: null });
      await store.updateJob(j1.id, {});
      assert.deepEqual(await store.getJob(j1.id), { ...failed, error: null }, 'an empty patch changes nothing');
      await store.updateJob(j2.id, { state: 'succeeded', commit: 'c'.repeat(40), finishedAt: 30 });
      assert.equal((await store.getJob(j2.id))!.commit, 'c'.repeat(40));
      await assert.rejects(async () => await store.updateJob(9999, { phase: 'x' }), isCode('not-found'));
      await assert.rejects(async () => await store.updateJob(9999, {}), isCode('not-found'));
      await assert.rejects(async () => await store.updateJob(j3.id, { state: 'bogus' as JobRecord['state'] }));
      assert.equal((await store.getJob(j3.id))!.state, 'queued', 'a refused update changes nothing');

      assert.deepEqual((await store.listJobs('a/a', 10)).map((j) => j.id), [j2.id, j1.id]);
      assert.deepEqual((await store.listJobs('a/a', 1)).map((j) => j.id), [j2.id]);
      assert.deepEqual((await store.listJobs('a/a', -1)).map((j) => j.id), [j2.id, j1.id], 'a negative limit is none');
      assert.deepEqual(await store.listJobs('none', 10), []);
      assert.deepEqual(await store.unfinishedJobs(), [j3]);
    });

    test('a job keeps its error code', async (t) => {
      const store = await fresh(t);
      const j = await store.createJob(newJob('a/a'));
      assert.equal((await store.getJob(j.id))!.errorCode, null);
      await store.updateJob(j.id, { state: 'failed', error: 'no such ref', errorCode: 'not-found' });
      assert.equal((await store.getJob(j.id))!.errorCode, 'not-found');
      await store.updateJob(j.id, { phase: 'x' });
      assert.equal((await store.getJob(j.id))!.errorCode, 'not-found', 'absent fields are left alone');
      const k = await store.createJob(newJob('a/a', { state: 'failed', errorCode: 'unreachable', error: 'down' }));
      assert.equal((await store.getJob(k.id))!.errorCode, 'unreachable');
    });

    test('publishRef lands only for a repository registered for the build\'s upstream', async (t) => {
      const store = await fresh(t);
      const main = 'refs/heads/main';
      assert.equal(await store.publishRef(refRecord('ghost', main, 1), UPSTREAM), false, 'never registered');
      assert.equal(await store.getRef('ghost', main), null);
      await register(store, 'r');
      assert.equal(await store.publishRef(refRecord('r', main, 1), 'https://example.com/elsewhere.git'), false, 'another upstream');
      assert.equal(await store.getRef('r', main), null);
      assert.equal(await store.publishRef(refRecord('r', main, 1), UPSTREAM), true);
      await store.setRepoUrl('r', 'https://example.com/moved.git');
      assert.equal(await store.publishRef(refRecord('r', main, 2), UPSTREAM), false, 'a build of the old upstream after a re-point');
      assert.deepEqual(await store.getRef('r', main), refRecord('r', main, 1), 'another spelling keeps the records');
      assert.equal(await store.publishRef(refRecord('r', main, 3), 'https://example.com/moved.git'), true);
      assert.equal((await store.getRepo('r'))!.url, 'https://example.com/moved.git');
      await assert.rejects(async () => await store.setRepoUrl('no/such', UPSTREAM), isCode('not-found'));
      await assert.rejects(async () => await store.setRepoUrl('no/such', UPSTREAM, { newUpstream: true }), isCode('not-found'));
      assert.equal(await store.removeRef('r', main), true);
      assert.equal(await store.removeRef('r', main), false);
      assert.deepEqual(await store.listRefs('r'), []);
    });

    test('setLevels: an older sync\'s chain never replaces a newer one\'s; another upstream\'s chain is not read, and is replaced', async (t) => {
      const store = await fresh(t);
      await register(store, 'r');
      assert.equal(await store.setLevels('ghost', UPSTREAM, 1, ['x']), false, 'not registered');
      assert.equal(await store.setLevels('r', UPSTREAM, 6, ['newer']), true);
      assert.equal(await store.setLevels('r', UPSTREAM, 5, ['older']), false, 'a slower older sync wrote its chain last');
      assert.equal(await store.setLevels('r', UPSTREAM, 6, ['same seq']), false);
      assert.deepEqual(await store.getLevels('r', UPSTREAM), { seq: 6, levels: ['newer'] });
      assert.equal(await store.setLevels('r', 'https://example.com/other.git', 9, ['other']), false, 'not the registered upstream');
      await store.setRepoUrl('r', 'https://example.com/other.git');
      assert.equal(await store.getLevels('r', 'https://example.com/other.git'), null, 'a chain of the old URL is not the new one\'s');
      assert.equal(await store.setLevels('r', 'https://example.com/other.git', 2, ['other']), true, 'a smaller seq of the new upstream replaces the old upstream\'s chain');
      assert.deepEqual(await store.getLevels('r', 'https://example.com/other.git'), { seq: 2, levels: ['other'] });
      assert.equal(await store.getLevels('r', UPSTREAM), null);
      assert.equal(await store.putSnapshot({ repo: 'r', seq: 7, data: {}, createdAt: 1 }, UPSTREAM), false, 'a snapshot of the old upstream after a re-point');
      assert.equal(await store.latestSnapshot('r'), null);
      await assert.rejects(async () => await store.setLevels('r', UPSTREAM, 1.5, []), isCode('invalid'));
      await assert.rejects(async () => await store.putSnapshot({ repo: 'r', seq: 0.5, data: {}, createdAt: 1 }, UPSTREAM), isCode('invalid'));
    });

    test('setRepoUrl to another upstream: records, level chain, snapshots and composed manifests go in the same step; old builds cannot publish again', async (t) => {
      const store = await fresh(t);
      await register(store, 'r', 'keep');
      const main = 'refs/heads/main';
      const seq = await store.nextSeq('r');
      assert.equal(await store.publishRef(refRecord('r', main, seq), UPSTREAM), true);
      assert.equal(await store.publishRef({ ...refRecord('r', main, seq), mode: 'shallow' }, UPSTREAM), true);
      assert.equal(await store.publishRef(refRecord('r', 'refs/tags/v1', seq), UPSTREAM), true);
      assert.equal(await store.publishRef(refRecord('keep', main, 1), UPSTREAM), true);
      assert.equal(await store.setLevels('r', UPSTREAM, seq, ['a-level']), true);
      await store.putSnapshot({ repo: 'r', seq, data: { a: 1 }, createdAt: 1 }, UPSTREAM);
      await store.putComposed('r', 'k', { digest: 'd', size: 1 });
      await store.putCommitBuild('r', 'c'.repeat(40), 'files', { kept: true });
      const other = 'https://example.com/b.git';
      await store.setRepoUrl('r', other, { newUpstream: true, defaultBranch: 'trunk' });
      assert.deepEqual(await store.listRefs('r'), []);
      assert.equal(await store.latestSnapshot('r'), null);
      assert.equal(await store.getComposed('r', 'k'), null);
      assert.deepEqual(await store.getRepo('r'), { name: 'r', url: other, defaultBranch: 'trunk', createdAt: 1, visibility: 'public' });
      assert.deepEqual(await store.getCommitBuild('r', 'c'.repeat(40)), { stage: 'files', data: { kept: true } }, 'commit builds are by commit id: kept');
      assert.equal((await store.listRefs('keep')).length, 1, 'another repository is untouched');
      assert.equal(await store.setLevels('r', other, 1, ['b']), true);
      assert.deepEqual(await store.getLevels('r', other), { seq: 1, levels: ['b'] });
      // A build of B that fetched before the re-point (its seq) cannot publish main or v1 either.
      assert.equal(await store.publishRef(refRecord('r', main, seq), other), false);
      assert.equal(await store.publishRef(refRecord('r', 'refs/tags/v1', seq), other), false);
      assert.equal(await store.publishRef(refRecord('r', main, await store.nextSeq('r')), other), true);
      // Without defaultBranch it stays as it is.
      await store.setRepoUrl('r', UPSTREAM, { newUpstream: true });
      assert.equal((await store.getRepo('r'))!.defaultBranch, 'trunk');
      assert.deepEqual(await store.listRefs('r'), []);
    });

    test('removeRepo: record, refs and finished jobs go in one step; unfinished jobs and the seq stay', async (t) => {
      const store = await fresh(t);
      await register(store, 'a/a', 'b/b');
      await store.nextSeq('a/a');
      await store.publishRef(refRecord('a/a', 'refs/heads/main', 1), UPSTREAM);
      await store.publishRef(refRecord('a/a', 'refs/tags/v1', 1), UPSTREAM);
      await store.publishRef(refRecord('b/b', 'refs/heads/main', 1), UPSTREAM);
      await store.putCommitBuild('a/a', 'c'.repeat(40), 'files', {});
      await store.putCommitBuild('b/b', 'c'.repeat(40), 'files', {});
      const done = await store.createJob(newJob('a/a', { state: 'succeeded' }));
      const failed = await store.createJob(newJob('a/a', { state: 'failed', error: 'x', errorCode: 'unreachable' }));
      const running = await store.createJob(newJob('a/a', { state: 'running' }));
      const queued = await store.createJob(newJob('a/a'));
      const other = await store.createJob(newJob('b/b', { state: 'succeeded' }));

      const removed = await store.removeRepo('a/a');
      assert.deepEqual(removed, { name: 'a/a', url: UPSTREAM, defaultBranch: null, createdAt: 1, visibility: 'public' });
      assert.equal(await store.removeRepo('a/a'), null);
      assert.equal(await store.getRepo('a/a'), null);
      assert.deepEqual(await store.listRefs('a/a'), []);
      assert.equal(await store.getCommitBuild('a/a', 'c'.repeat(40)), null);
      assert.notEqual(await store.getCommitBuild('b/b', 'c'.repeat(40)), null);
      assert.equal(await store.getJob(done.id), null);
      assert.equal(await store.getJob(failed.id), null);
      assert.deepEqual((await store.listJobs('a/a', 10)).map((j) => j.id), [queued.id, running.id]);
      assert.deepEqual((await store.unfinishedJobs()).map((j) => j.id), [running.id, queued.id]);
      // Nothing of another repository is touched.
      assert.equal((await store.listRefs('b/b')).length, 1);
      assert.deepEqual(await store.getJob(other.id), other);
      // A running build of the removed registration can no longer publish.
      assert.equal(await store.publishRef(refRecord('a/a', 'refs/heads/main', 5), UPSTREAM), false);
      // Registered again: seqs keep increasing, so old builds order before new ones.
      await register(store, 'a/a');
      assert.equal(await store.nextSeq('a/a'), 2);
      // Tombstones went with the registration: nothing blocks the new one's builds.
      assert.equal(await store.publishRef(refRecord('a/a', 'refs/heads/main', 2), UPSTREAM), true);
    });

    test('removeRef at a seq: only older records go; the tombstone blocks older publishes, never newer ones', async (t) => {
      const store = await fresh(t);
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
      assert.equal(await store.publishRef({ ...refRecord('r', dev, 5), mode: 'files' }, UPSTREAM), false, 'the tombstone covers every mode');
    });

    test('removeRef without a seq tombstones at the repository\'s current seq, even with no record', async (t) => {
      const store = await fresh(t);
      await register(store, 'r');
      const main = 'refs/heads/main';
      assert.equal(await store.removeRef('r', main), false, 'nothing to remove');
      assert.equal(await store.publishRef(refRecord('r', main, 1), UPSTREAM), true, 'tombstone at seq 0 blocks nothing');
      const now = await store.nextSeq('r');
      await store.nextSeq('r');
      assert.equal(await store.removeRef('r', main), true);
      assert.equal(await store.publishRef(refRecord('r', main, now + 1), UPSTREAM), false, 'fetched before the removal');
      assert.equal(await store.publishRef(refRecord('r', main, now + 2), UPSTREAM), true);
      await assert.rejects(async () => await store.removeRef('r', main, 1.5), (e) => e instanceof Error);
    });

    test('records per mode; commit build stages never go back; snapshots are create-only; removeRef and removeRepo clear every mode', async (t) => {
      const store = await fresh(t);
      await register(store, 'r');
      const main = 'refs/heads/main';
      const shallow = { ...refRecord('r', main, 7), mode: 'shallow' as const };
      assert.equal(await store.publishRef(shallow, UPSTREAM), true);
      assert.equal(await store.publishRef(refRecord('r', main, 6), UPSTREAM), true, 'modes are independent');
      assert.equal(await store.publishRef({ ...shallow, seq: 6 }, UPSTREAM), false);
      const files = { ...refRecord('r', main, 8), mode: 'files' as const };
      assert.equal(await store.publishRef(files, UPSTREAM), true);
      assert.deepEqual(await store.getRefModes('r', main), [files, refRecord('r', main, 6), shallow]);
      assert.deepEqual(await store.getRef('r', main, 'shallow'), shallow);
      assert.deepEqual(await store.getRef('r', main, 'files'), files);

      const c = 'a'.repeat(40);
      assert.equal(await store.getCommitBuild('r', c), null);
      await store.putCommitBuild('r', c, 'shallow', { n: 1 });
      assert.deepEqual(await store.getCommitBuild('r', c), { stage: 'shallow', data: { n: 1 } });
      await store.putCommitBuild('r', c, 'shallow', { n: 1.5 }); // an equal stage is replaced (a rebuild after damage)
      assert.deepEqual(await store.getCommitBuild('r', c), { stage: 'shallow', data: { n: 1.5 } });
      await store.putCommitBuild('r', c, 'files', { n: 2 });
      await store.putCommitBuild('r', c, 'shallow', { n: 3 }); // a late shallow stage never replaces the complete build
      assert.deepEqual(await store.getCommitBuild('r', c), { stage: 'files', data: { n: 2 } });
      await store.putCommitBuild('r', 'b'.repeat(40), 'files', { n: 4 });
      assert.deepEqual(await store.recentCommitBuilds('r', 1), [{ n: 4 }]);
      assert.deepEqual(await store.recentCommitBuilds('r', 10), [{ n: 4 }, { n: 2 }]);
      assert.deepEqual(await store.recentCommitBuilds('other', 10), []);
      assert.deepEqual(await store.recentCommitBuilds('r', -1), [{ n: 4 }, { n: 2 }]);

      assert.equal(await store.getLevels('r', UPSTREAM), null);
      assert.equal(await store.setLevels('r', UPSTREAM, 3, [{ tips: ['x'] }]), true);
      assert.deepEqual(await store.getLevels('r', UPSTREAM), { seq: 3, levels: [{ tips: ['x'] }] });
      assert.equal(await store.putSnapshot({ repo: 'r', seq: 3, data: { a: 1 }, createdAt: 1 }, UPSTREAM), true);
      assert.equal(await store.putSnapshot({ repo: 'r', seq: 3, data: { a: 2 }, createdAt: 2 }, UPSTREAM), false);
      assert.equal(await store.putSnapshot({ repo: 'r', seq: 2, data: { a: 0 }, createdAt: 3 }, UPSTREAM), true);
      assert.equal(await store.putSnapshot({ repo: 'ghost', seq: 2, data: { a: 0 }, createdAt: 3 }, UPSTREAM), false);
      assert.deepEqual(await store.getSnapshot('r', 3), { repo: 'r', seq: 3, data: { a: 1 }, createdAt: 1 });
      assert.deepEqual(await store.getSnapshot('r', 2), { repo: 'r', seq: 2, data: { a: 0 }, createdAt: 3 });
      assert.equal(await store.getSnapshot('r', 4), null);
      assert.equal((await store.latestSnapshot('r'))!.seq, 3);
      assert.equal(await store.getComposed('r', 'k'), null);
      await store.putComposed('r', 'k', { digest: 'd', size: 1 });
      await store.putComposed('r', 'k', { digest: 'e', size: 2 }); // the first composition stays
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

    describe('garbage collection (gc*)', () => {
      const d = (n: number) => n.toString(16).padStart(64, '0');

      test('retention: the newest N composed manifests per (repo, ref, mode); rows of a digest go together', async (t) => {
        const store = await fresh(t);
        const main = 'refs/heads/main';
        // Retention counts only refs that still have a record: main in r and q, not gone in r.
        await register(store, 'r', 'q');
        assert.equal(await store.publishRef(refRecord('r', main, 5), UPSTREAM), true);
        assert.equal(await store.publishRef(refRecord('q', main, 9), UPSTREAM), true);
        await store.putComposed('r', 'refs/heads/gone full 3 -', { digest: d(50), size: 1 }, { ref: 'refs/heads/gone', mode: 'full', seq: 3 });
        for (let seq = 1; seq <= 5; seq++) {
          await store.putComposed('r', `${main} full ${seq} -`, { digest: d(seq), size: seq }, { ref: main, mode: 'full', seq });
          await store.putComposed('r', `${main} shallow ${seq} -`, { digest: d(100 + seq), size: seq }, { ref: main, mode: 'shallow', seq });
        }
        await store.putComposed('q', `${main} full 9 -`, { digest: d(1), size: 1 }, { ref: main, mode: 'full', seq: 9 });
        await store.putComposed('r', 'legacy', { digest: d(999), size: 1 }); // no record: not retained
        const kept = (await store.gcRetainedComposed(2)).map((x) => `${x.repo}:${parseInt(x.digest, 16)}`).sort();
        assert.deepEqual(kept, ['q:1', 'r:104', 'r:105', 'r:4', 'r:5'].sort());
        assert.deepEqual(await store.gcRetainedComposed(0), []);
        await store.gcDeleteComposed(d(1));
        assert.equal(await store.getComposed('r', `${main} full 1 -`), null);
        assert.equal(await store.getComposed('q', `${main} full 9 -`), null, 'every row of the digest');
        assert.deepEqual(await store.getComposed('r', `${main} full 2 -`), { digest: d(2), size: 2 });
      });

      test('unreachable artifacts keep their first sighting until forgotten', async (t) => {
        const store = await fresh(t);
        await store.gcNoteUnreachable([{ digest: d(1), size: 10 }, { digest: d(2), size: 20 }], 1000);
        await store.gcNoteUnreachable([{ digest: d(2), size: 20 }, { digest: d(3), size: 30 }], 5000);
        assert.deepEqual(await store.gcListUnreachable(), [
          { digest: d(1), size: 10, firstSeen: 1000 },
          { digest: d(2), size: 20, firstSeen: 1000 },
          { digest: d(3), size: 30, firstSeen: 5000 },
        ]);
        await store.gcForgetUnreachable([d(2), d(9)]);
        await store.gcNoteUnreachable([{ digest: d(2), size: 20 }], 7000);
        assert.deepEqual((await store.gcListUnreachable()).map((u) => [u.digest, u.firstSeen]), [[d(1), 1000], [d(3), 5000], [d(2), 7000]]);
        await store.gcNoteUnreachable([], 1);
        await store.gcForgetUnreachable([]);
      });

      test('one pass lease; the deleting flag is refused while a job runs and holds job starts back', async (t) => {
        const store = await fresh(t);
        assert.equal(await store.gcAcquirePass('a', 60_000), true);
        assert.equal(await store.gcAcquirePass('b', 60_000), false);
        assert.equal(await store.gcAcquirePass('a', 60_000), true, 'renewed by its owner');
        await store.gcReleasePass('b'); // not b's: nothing
        assert.equal(await store.gcAcquirePass('b', 60_000), false);
        await store.gcReleasePass('a');
        assert.equal(await store.gcAcquirePass('b', 60_000), true);

        const job = await store.createJob(newJob('r'));
        assert.equal(await store.gcStartJob(job.id, 'starting', 5), true);
        assert.equal((await store.getJob(job.id))!.state, 'running');
        assert.equal(await store.gcBeginDelete('g', 60_000, 60_000), false, 'a job runs');
        await store.updateJob(job.id, { state: 'succeeded', finishedAt: 6 });
        assert.equal(await store.gcBeginDelete('g', 60_000, 60_000), true);
        assert.equal(await store.gcBeginDelete('h', 60_000, 60_000), false, 'another owner deletes');
        assert.equal(await store.gcRenewDelete('g', 60_000), true);
        const next = await store.createJob(newJob('r'));
        assert.equal(await store.gcStartJob(next.id, 'starting', 7), false);
        assert.equal((await store.getJob(next.id))!.state, 'queued');
        await store.gcEndDelete('g');
        assert.equal(await store.gcRenewDelete('g', 60_000), false);
        assert.equal(await store.gcStartJob(next.id, 'starting', 8), true);
      });

      test('the last report round-trips', async (t) => {
        const store = await fresh(t);
        assert.equal(await store.gcLastReport(), null);
        await store.gcSaveReport({ ran: true, deleted: { count: 2, bytes: 30 } });
        assert.deepEqual(await store.gcLastReport(), { ran: true, deleted: { count: 2, bytes: 30 } });
      });
    });

    test('ping answers while open and fails once closed; close is idempotent', async () => {
      const store = await open();
      assert.ok(store.ping, 'the store can be pinged');
      await store.ping!();
      await store.close();
      await store.close();
      await assert.rejects(async () => await store.ping!());
    });
  });

  // Access control (serve/access/): repository visibility and the private-artifact index.
  describe(`MetadataStore suite: ${name}: access control`, () => {
    test('visibility: stored as given, kept by a re-point unless given, set with it in one write', async (t) => {
      const store = await fresh(t);
      const priv = { name: 'p/p', url: 'https://example.com/p.git', defaultBranch: null, createdAt: 1, visibility: 'private' as const };
      const pub = { name: 'q/q', url: 'https://example.com/q.git', defaultBranch: null, createdAt: 2, visibility: 'public' as const };
      assert.equal(await store.addRepo(priv), true);
      assert.equal(await store.addRepo(pub), true);
      assert.deepEqual(await store.getRepo('p/p'), priv);
      assert.deepEqual(await store.listRepos(), [priv, pub]);
      // A second registration under the name changes nothing, visibility included.
      assert.equal(await store.addRepo({ ...priv, visibility: 'public' }), false);
      assert.equal((await store.getRepo('p/p'))!.visibility, 'private');
      await store.setRepoUrl('p/p', 'https://example.com/p2.git', { newUpstream: true });
      assert.equal((await store.getRepo('p/p'))!.visibility, 'private', 'a re-point without visibility keeps it');
      await store.setRepoUrl('p/p', 'https://example.com/p2.git', { visibility: 'public' });
      assert.equal((await store.getRepo('p/p'))!.visibility, 'public');
      await store.setRepoUrl('q/q', 'https://example.com/q2.git', { newUpstream: true, visibility: 'private' });
      assert.deepEqual(await store.getRepo('q/q'), { ...pub, url: 'https://example.com/q2.git', visibility: 'private' });
    });

    test('private-artifact index: marked digests only, idempotent, empty list is a no-op', async (t) => {
      const store = await fresh(t);
      const [a, b, c] = ['a', 'b', 'c'].map((x) => sha256Hex(x));
      assert.equal(await store.isPrivateArtifact(a!), false);
      await store.markPrivateArtifacts([]);
      await store.markPrivateArtifacts([a!, b!, a!]);
      await store.markPrivateArtifacts([b!]);
      assert.equal(await store.isPrivateArtifact(a!), true);
      assert.equal(await store.isPrivateArtifact(b!), true);
      assert.equal(await store.isPrivateArtifact(c!), false);
      // Many at once (a manifest names thousands of chunks) in one call.
      const many = Array.from({ length: 3000 }, (_, i) => sha256Hex(`chunk ${i}`));
      await store.markPrivateArtifacts(many);
      assert.equal(await store.isPrivateArtifact(many[2999]!), true);
      assert.equal(await store.isPrivateArtifact(sha256Hex('chunk 3000')), false);
    });
  });
}
