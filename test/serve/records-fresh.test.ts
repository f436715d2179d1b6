/**
 * What a sync leaves alone and what a resolve says, against real upstreams, real
 * HTTP and real SQLite: a new tag republishes nothing for refs at other commits;
 * a changed commit build row is not served from the composed-manifest cache; an
 * older sync that reaches the history step after a newer one leaves the level
 * chain and snapshots alone; `newer` names a job that has not fetched yet.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { addAndBuild, call, commit, git, makeUpstream, startTestServer, tempDir, waitJob } from './helpers.js';
import { StepGate } from './step-gate.js';
import { manifestOf, resolveMode as resolve } from './mode-helpers.js';
import { SqliteMetadataStore } from '../../src/metadata/sqlite/sqlite-store.js';
import { LocalArtifactStore } from '../../src/storage/local/local-store.js';
import { SyncService } from '../../src/serve/sync.js';


async function sync(base: string, repo: string, body: Record<string, unknown> = {}): Promise<number> {
  const r = await call(base, 'POST', `/v1/repos/${repo}/sync`, body);
  assert.equal(r.status, 202, r.text);
  return r.json.job.id as number;
}

function rows(dbPath: string, repo: string, ref: string): { mode: string; seq: number; commit_oid: string; view: string }[] {
  const db = new Database(dbPath, { readonly: true });
  try {
    return db.prepare('SELECT mode, seq, commit_oid, view FROM ref_modes WHERE repo = ? AND ref = ? ORDER BY mode').all(repo, ref) as never;
  } finally {
    db.close();
  }
}

test('a new tag on one commit republishes nothing for the shallow and files records of refs at other commits; the tagged ref follows it', async () => {
  const up = makeUpstream(tempDir()); // main at the second commit; dev (and annotated v1) at the first
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'tags');
    assert.equal((await waitJob(s.url, await sync(s.url, 'tags', { branch: 'dev' }))).state, 'succeeded');
    const dbPath = join(s.dataDir, 'snapclone.db');
    const mainBefore = rows(dbPath, 'tags', 'refs/heads/main');
    const devBefore = rows(dbPath, 'tags', 'refs/heads/dev');
    assert.equal(mainBefore.length, 3);
    git(up.dir, ['tag', '-a', '-m', 'v2', 'v2', 'dev']);
    assert.equal((await waitJob(s.url, await sync(s.url, 'tags'))).state, 'succeeded');
    const mainAfter = rows(dbPath, 'tags', 'refs/heads/main');
    const pick = (rs: typeof mainBefore, mode: string) => rs.find((r) => r.mode === mode);
    for (const mode of ['shallow', 'files']) assert.deepEqual(pick(mainAfter, mode), pick(mainBefore, mode), `main ${mode} was republished for a tag on another commit`);
    const devAfter = rows(dbPath, 'tags', 'refs/heads/dev');
    assert.ok(pick(devAfter, 'shallow')!.seq > pick(devBefore, 'shallow')!.seq, 'dev follows the new tag');
    const r = await resolve(s.url, 'tags', 'shallow', 'dev');
    assert.deepEqual((await manifestOf(s.url, r.json.manifest.digest)).followedTags, ['refs/tags/v1', 'refs/tags/v2']);
    const full = await resolve(s.url, 'tags', 'full');
    assert.ok((await manifestOf(s.url, full.json.manifest.digest)).refs.some((e) => e.name === 'refs/tags/v2'), 'full lists every tag');
  } finally {
    await s.close();
  }
});

test('a commit build row replaced (a rebuild) gives a newly composed manifest, not the cached one', async () => {
  const up = makeUpstream(tempDir());
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'rebuilt');
    const before = await resolve(s.url, 'rebuilt', 'shallow');
    assert.equal(before.status, 200, before.text);
    // A rebuild whose table came out with other bytes: the row is replaced at the same stage.
    const db = new Database(join(s.dataDir, 'snapclone.db'));
    try {
      const row = db.prepare('SELECT data FROM commit_builds WHERE repo = ? AND commit_oid = ?').get('rebuilt', up.head) as { data: string };
      const build = JSON.parse(row.data);
      build.table = { ...build.table, digest: build.skeleton.idx.digest, size: build.skeleton.idx.size };
      db.prepare('UPDATE commit_builds SET data = ? WHERE repo = ? AND commit_oid = ?').run(JSON.stringify(build), 'rebuilt', up.head);
      const after = await resolve(s.url, 'rebuilt', 'shallow');
      assert.notEqual(after.json.manifest.digest, before.json.manifest.digest, 'the manifest composed from the old build row is still served');
      assert.equal((await manifestOf(s.url, after.json.manifest.digest)).table.digest, build.skeleton.idx.digest);
    } finally {
      db.close();
    }
  } finally {
    await s.close();
  }
});

test('an older sync reaching the history step after a newer one writes no level chain and no snapshot', async () => {
  const up = makeUpstream(tempDir());
  const s = await startTestServer();
  const meta = new SqliteMetadataStore(join(s.dataDir, 'snapclone.db'));
  try {
    await addAndBuild(s.url, up.dir, 'order');
    let holdFirst: (() => void) | null = null;
    const held = new Promise<void>((r) => (holdFirst = r));
    let arrived!: () => void;
    const atFiles = new Promise<void>((r) => (arrived = r));
    let first = true;
    const beforeStep = async (step: string) => {
      if (step !== 'files' || !first) return;
      first = false;
      arrived();
      await held;
    };
    const syncs = new SyncService(s.dataDir, new LocalArtifactStore(join(s.dataDir, 'artifacts')), meta, { beforeStep });
    const job = () => meta.createJob({ repo: 'order', kind: 'sync', ref: null, state: 'running', phase: 'test', error: null, commit: null, createdAt: Date.now(), startedAt: Date.now(), finishedAt: null });
    commit(up.dir, { 'one.txt': 'one\n' }, 'one');
    const older = syncs.run(await job(), () => {});
    await atFiles; // the older sync fetched (its seq is stamped) and holds before its files step
    const olderSeq = await meta.nextSeq('order') - 1; // nextSeq increments: the older one's seq is below this
    const two = commit(up.dir, { 'two.txt': 'two\n' }, 'two');
    await syncs.run(await job(), () => {});
    const newer = (await meta.latestSnapshot('order'))!;
    assert.ok(newer.seq > olderSeq);
    const levels = await meta.getLevels('order', up.dir);
    holdFirst!();
    await older;
    assert.equal(await meta.getSnapshot('order', olderSeq), null, 'the older sync wrote a snapshot after the newer one');
    assert.equal((await meta.latestSnapshot('order'))!.seq, newer.seq);
    assert.deepEqual(await meta.getLevels('order', up.dir), levels, 'the older sync rewrote the level chain');
    assert.equal((await resolve(s.url, 'order', 'full')).json.commit, two);
  } finally {
    meta.close();
    await s.close();
  }
});

test('newer is {commit: null, job} while a sync queued after a push has not fetched yet', async () => {
  const up = makeUpstream(tempDir());
  const gate = new StepGate();
  const s = await startTestServer({ buildOptions: { beforeStep: gate.hook } });
  try {
    await addAndBuild(s.url, up.dir, 'pushed');
    gate.shut('history');
    const second = commit(up.dir, { 'second.txt': '2\n' }, 'second push');
    const atHistory = gate.reached('history');
    const running = await sync(s.url, 'pushed');
    await atHistory; // shallow and files of `second` are published; full waits
    const shallowNow = await resolve(s.url, 'pushed', 'shallow');
    assert.equal(shallowNow.json.commit, second);
    assert.equal(shallowNow.json.newer, null, 'nothing newer is known or on its way');
    commit(up.dir, { 'third.txt': '3\n' }, 'third push');
    const queued = await sync(s.url, 'pushed'); // a webhook's sync: queued behind the running one
    assert.notEqual(queued, running);
    const r = await resolve(s.url, 'pushed', 'shallow');
    assert.equal(r.json.commit, second);
    assert.deepEqual(r.json.newer, { commit: null, job: queued });
    gate.open('history');
    assert.equal((await waitJob(s.url, queued)).state, 'succeeded');
  } finally {
    gate.open('history'); // a failed assertion must not leave the job (and close) waiting
    await s.close();
  }
});
