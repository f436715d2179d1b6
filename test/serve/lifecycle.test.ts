/**
 * Server lifecycle and edge cases: restart on the same data dir, concurrent
 * identical registrations, an upstream without commits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { addAndBuild, call, git, makeUpstream, startTestServer, tempDir, waitJob } from './helpers.js';
import { parseManifest } from '../../src/clonepack/manifest.js';

test('a restarted server on the same data dir serves what it built', async () => {
  const up = makeUpstream(tempDir());
  const dataDir = tempDir('snapclone-data-');
  const s1 = await startTestServer({ dataDir });
  let digest: string;
  try {
    await addAndBuild(s1.url, up.dir, 'keep');
    digest = (await call(s1.url, 'GET', '/v1/repos/keep/resolve')).json.manifest.digest;
  } finally {
    await s1.close();
  }
  const s2 = await startTestServer({ dataDir });
  try {
    const r = await call(s2.url, 'GET', '/v1/repos/keep/resolve');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.manifest.digest, digest);
    assert.equal((await fetch(`${s2.url}/v1/artifacts/${digest}`)).status, 200);
    assert.deepEqual((await call(s2.url, 'GET', '/v1/repos')).json.repos, [{ name: 'keep', url: up.dir, defaultBranch: 'main', visibility: 'public' }]);
    // Registering again is idempotent across restarts.
    const again = await call(s2.url, 'POST', '/v1/repos', { url: up.dir, name: 'keep' });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.created, false);
  } finally {
    await s2.close();
  }
});

test('two identical registrations at the same time: one creates, the other is not a conflict', async () => {
  const up = makeUpstream(tempDir());
  const s = await startTestServer();
  try {
    const body = { url: up.dir, name: 'racy' };
    const answers = await Promise.all([call(s.url, 'POST', '/v1/repos', body), call(s.url, 'POST', '/v1/repos', body)]);
    const statuses = answers.map((a) => a.status).sort();
    assert.deepEqual(statuses, [200, 201], answers.map((a) => `${a.status} ${a.text}`).join(' | '));
    const created = answers.find((a) => a.status === 201)!;
    await waitJob(s.url, created.json.job.id);
  } finally {
    await s.close();
  }
});

test('an upstream without commits builds an empty clonepack', async () => {
  const parent = tempDir();
  const dir = join(parent, 'empty');
  mkdirSync(dir);
  git(dir, ['init', '-q', '-b', 'main']);
  const s = await startTestServer();
  try {
    const add = await call(s.url, 'POST', '/v1/repos', { url: dir, name: 'empty' });
    assert.equal(add.status, 201, add.text);
    const job = await waitJob(s.url, add.json.job.id);
    assert.equal(job.state, 'succeeded', job.error);
    const r = await call(s.url, 'GET', '/v1/repos/empty/resolve');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.commit, null);
    const m = parseManifest(Buffer.from(await (await fetch(`${s.url}/v1/artifacts/${r.json.manifest.digest}`)).arrayBuffer()));
    assert.equal(m.commit, null);
    assert.deepEqual(m.refs, []);
    assert.deepEqual(m.headPacks, []);
    assert.equal(m.table.entries, 0);
  } finally {
    await s.close();
  }
});

test('a ref deleted upstream stops being served; the default branch\'s full manifest no longer lists it', async () => {
  const up = makeUpstream(tempDir());
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'prune');
    const sync = await call(s.url, 'POST', '/v1/repos/prune/sync', { branch: 'dev' });
    assert.equal((await waitJob(s.url, sync.json.job.id)).state, 'succeeded');
    assert.equal((await call(s.url, 'GET', '/v1/repos/prune/resolve?ref=dev')).status, 200);
    const mainBefore = (await call(s.url, 'GET', '/v1/repos/prune/resolve')).json;
    git(up.dir, ['branch', '-D', 'dev']);
    const all = await call(s.url, 'POST', '/v1/repos/prune/sync', {});
    const job = await waitJob(s.url, all.json.job.id);
    assert.equal(job.state, 'succeeded', job.error);
    // As git clone --branch dev would now fail (the records go; the artifacts stay for older manifests).
    const after = await call(s.url, 'GET', '/v1/repos/prune/resolve?ref=dev');
    assert.equal(after.status, 404, after.text);
    assert.equal(after.json.code, 'not-found');
    // main is rebuilt although its commit did not move: it is the default branch and the
    // branch list changed (dev is gone), which a full clone of it must show.
    const main = await call(s.url, 'GET', '/v1/repos/prune/resolve');
    assert.notEqual(main.json.manifest.digest, mainBefore.manifest.digest);
    const m = parseManifest(Buffer.from(await (await fetch(`${s.url}/v1/artifacts/${main.json.manifest.digest}`)).arrayBuffer()));
    assert.deepEqual(
      m.refs.map((r) => r.name),
      ['refs/heads/main', 'refs/tags/v1'],
    );
  } finally {
    await s.close();
  }
});
