/**
 * Managing repositories: list, remove, re-point (PATCH url), URL normalization
 * and the 409 message; a build running when its repository is removed or
 * re-pointed never publishes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { call, commit, git, makeUpstream, startTestServer, tempDir, waitJob } from './helpers.js';
import { addPublicAndBuild } from './public-upstream.js';
import { gatedSsh, waitRunning } from './gated-upstream.js';

const ADMIN = { authorization: 'Bearer adm1n' };
const enc = encodeURIComponent;

function mirrorOf(dataDir: string, name: string): string {
  return join(dataDir, 'mirrors', `${enc(name)}.git`);
}

test('GET /v1/repos lists every repository with its default branch', async () => {
  const work = tempDir();
  const a = makeUpstream(work, 'a');
  const b = makeUpstream(work, 'b');
  git(b.dir, ['symbolic-ref', 'HEAD', 'refs/heads/dev']);
  const s = await startTestServer();
  try {
    await addPublicAndBuild(s.url, a.dir, 'team/a');
    await addPublicAndBuild(s.url, b.dir, 'b');
    const r = await call(s.url, 'GET', '/v1/repos');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.repos, [
      { name: 'b', url: b.dir, defaultBranch: 'dev', visibility: 'public' },
      { name: 'team/a', url: a.dir, defaultBranch: 'main', visibility: 'public' },
    ]);
  } finally {
    await s.close();
  }
});

test('DELETE removes the registration, its refs and its mirror; artifacts stay; the name can be registered again', async () => {
  const work = tempDir();
  const up = makeUpstream(work);
  const other = makeUpstream(work, 'other');
  const s = await startTestServer({ adminToken: 'adm1n' });
  try {
    await addPublicAndBuild(s.url, up.dir, 'team/gone', ADMIN);
    const built = await call(s.url, 'GET', `/v1/repos/${enc('team/gone')}/resolve`);
    assert.equal(built.status, 200, built.text);
    assert.ok(existsSync(mirrorOf(s.dataDir, 'team/gone')));

    assert.equal((await call(s.url, 'DELETE', `/v1/repos/${enc('team/gone')}`)).status, 401);
    const missing = await call(s.url, 'DELETE', '/v1/repos/nope', undefined, ADMIN);
    assert.equal(missing.status, 404, missing.text);
    assert.equal(missing.json.code, 'not-found');

    const del = await call(s.url, 'DELETE', `/v1/repos/${enc('team/gone')}`, undefined, ADMIN);
    assert.equal(del.status, 200, del.text);
    assert.deepEqual(del.json, { name: 'team/gone', url: up.dir, removed: true });
    assert.equal((await call(s.url, 'GET', `/v1/repos/${enc('team/gone')}`)).status, 404);
    assert.equal((await call(s.url, 'GET', `/v1/repos/${enc('team/gone')}/resolve`)).status, 404);
    assert.deepEqual((await call(s.url, 'GET', '/v1/repos')).json.repos, []);
    assert.ok(!existsSync(mirrorOf(s.dataDir, 'team/gone')), 'the mirror is removed');
    // Artifacts become unreferenced but are not deleted (clients in flight may need them).
    assert.equal((await fetch(`${s.url}/v1/artifacts/${built.json.manifest.digest}`)).status, 200);
    assert.equal((await call(s.url, 'DELETE', `/v1/repos/${enc('team/gone')}`, undefined, ADMIN)).status, 404);

    // The name is free again, for another upstream; nothing of the old one shows.
    await addPublicAndBuild(s.url, other.dir, 'team/gone', ADMIN);
    const st = await call(s.url, 'GET', `/v1/repos/${enc('team/gone')}`);
    assert.equal(st.json.url, other.dir);
    assert.equal(st.json.jobs.length, 1, 'the removed registration\'s finished jobs are gone');
    const again = await call(s.url, 'GET', `/v1/repos/${enc('team/gone')}/resolve`);
    assert.equal(again.json.upstream, other.dir);
  } finally {
    await s.close();
  }
});

test('a build running when its repository is removed publishes nothing, even once the name is registered again', async () => {
  const work = tempDir();
  const gate = gatedSsh(work);
  const up = makeUpstream(work);
  const other = makeUpstream(work, 'other');
  const s = await startTestServer({ adminToken: 'adm1n' });
  try {
    await addPublicAndBuild(s.url, gate.url(up.dir), 'racy', ADMIN);
    const moved = commit(up.dir, { 'late.txt': 'late\n' }, 'late');
    gate.shut();
    const sync = await call(s.url, 'POST', '/v1/repos/racy/sync', {}, ADMIN);
    await waitRunning(s.url, sync.json.job.id);

    const del = await call(s.url, 'DELETE', '/v1/repos/racy', undefined, ADMIN);
    assert.equal(del.status, 200, del.text);
    // Registered again, for another upstream, while the old build still runs.
    const add = await call(s.url, 'POST', '/v1/repos', { url: other.dir, name: 'racy' }, ADMIN);
    assert.equal(add.status, 201, add.text);

    gate.open();
    const old = await waitJob(s.url, sync.json.job.id);
    assert.equal(old.state, 'failed', 'the old build must not count as published');
    assert.match(old.error, /removed|re-pointed/);
    const fresh = await waitJob(s.url, add.json.job.id);
    assert.equal(fresh.state, 'succeeded', fresh.error);
    const r = await call(s.url, 'GET', '/v1/repos/racy/resolve');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.commit, other.head);
    assert.notEqual(r.json.commit, moved);
    const refs = (await call(s.url, 'GET', '/v1/repos/racy')).json.refs;
    assert.deepEqual(refs.map((x: any) => [x.ref, x.commit]), [['refs/heads/main', other.head]]);
  } finally {
    gate.open();
    await s.close();
  }
});

test('removing a repository while its build runs removes the mirror once the build has stopped', async () => {
  const work = tempDir();
  const gate = gatedSsh(work);
  const up = makeUpstream(work);
  const s = await startTestServer({ adminToken: 'adm1n' });
  try {
    await addPublicAndBuild(s.url, gate.url(up.dir), 'busy', ADMIN);
    commit(up.dir, { 'late.txt': 'late\n' }, 'late');
    gate.shut();
    const sync = await call(s.url, 'POST', '/v1/repos/busy/sync', {}, ADMIN);
    await waitRunning(s.url, sync.json.job.id);
    // An unbuilt tag queues an on-demand build behind it.
    const queued = await call(s.url, 'GET', '/v1/repos/busy/resolve?ref=v1', undefined, ADMIN);
    assert.equal(queued.status, 202, queued.text);
    assert.equal((await call(s.url, 'DELETE', '/v1/repos/busy', undefined, ADMIN)).status, 200);
    assert.ok(existsSync(mirrorOf(s.dataDir, 'busy')), 'a running build keeps its mirror until it stops');
    gate.open();
    assert.equal((await waitJob(s.url, sync.json.job.id)).state, 'failed');
    const q = await waitJob(s.url, queued.json.job.id);
    assert.equal(q.state, 'failed', 'a queued job of a removed repository does not run');
    assert.match(q.error, /not registered|removed/);
    assert.equal((await call(s.url, 'GET', '/v1/repos/busy')).status, 404);
    assert.ok(!existsSync(mirrorOf(s.dataDir, 'busy')), 'the mirror is removed after the build stopped');
  } finally {
    gate.open();
    await s.close();
  }
});

test('PATCH url re-points a repository: checked like add, rebuilt from the new upstream', async () => {
  const work = tempDir();
  const old = makeUpstream(work, 'old');
  const neu = makeUpstream(work, 'new');
  const newHead = commit(neu.dir, { 'only-new.txt': 'new\n' }, 'new upstream');
  git(old.dir, ['branch', 'old-only']);
  const s = await startTestServer({ adminToken: 'adm1n' });
  try {
    await addPublicAndBuild(s.url, old.dir, 'moving', ADMIN);
    const ob = await call(s.url, 'POST', '/v1/repos/moving/sync', { branch: 'old-only' }, ADMIN);
    assert.equal((await waitJob(s.url, ob.json.job.id)).state, 'succeeded');
    const patch = (body: unknown, headers: Record<string, string> = ADMIN) => call(s.url, 'PATCH', '/v1/repos/moving', body, headers);

    assert.equal((await patch({ url: neu.dir }, {})).status, 401);
    const unknown = await call(s.url, 'PATCH', '/v1/repos/nope', { url: neu.dir }, ADMIN);
    assert.equal(unknown.status, 404, unknown.text);
    for (const bad of ['https://u:pw@example.com/x.git', 'ext::sh -c x', 'relative']) {
      const r = await patch({ url: bad });
      assert.equal(r.status, 400, `${bad}: ${r.text}`);
      assert.equal(r.json.code, 'usage');
    }
    const down = await patch({ url: join(work, 'nowhere') });
    assert.equal(down.status, 502, down.text);
    assert.equal(down.json.code, 'unreachable');
    assert.equal((await call(s.url, 'GET', '/v1/repos/moving')).json.url, old.dir, 'a refused PATCH changes nothing');

    const ok = await patch({ url: `file://${neu.dir}/` });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.name, 'moving');
    assert.equal(ok.json.url, `file://${neu.dir}/`, 'stored as given, as git clone writes it');
    const job = await waitJob(s.url, ok.json.job.id);
    assert.equal(job.state, 'succeeded', job.error);
    const r = await call(s.url, 'GET', '/v1/repos/moving/resolve');
    assert.equal(r.json.upstream, `file://${neu.dir}/`);
    assert.equal(r.json.commit, newHead);
    // A ref only the old upstream had is no longer served.
    const gone = await call(s.url, 'GET', '/v1/repos/moving/resolve?ref=old-only');
    assert.equal(gone.status, 404, gone.text);
    assert.deepEqual((await call(s.url, 'GET', '/v1/repos')).json.repos, [{ name: 'moving', url: `file://${neu.dir}/`, defaultBranch: 'main', visibility: 'public' }]);
    // Another spelling of the same upstream keeps every ref.
    const respelled = await patch({ url: neu.dir });
    assert.equal(respelled.status, 200, respelled.text);
    assert.equal((await waitJob(s.url, respelled.json.job.id)).state, 'succeeded');
    const same = await call(s.url, 'GET', '/v1/repos/moving/resolve');
    assert.equal(same.json.manifest.digest, r.json.manifest.digest);
    assert.equal(same.json.upstream, neu.dir);
  } finally {
    await s.close();
  }
});

test('a path, file:// and trailing slashes name the same upstream; a conflict names the URL that holds the name', async () => {
  const work = tempDir();
  const up = makeUpstream(work);
  const other = makeUpstream(work, 'other');
  const s = await startTestServer();
  try {
    // Stored as given: a clone's remote.origin.url is what was typed, as git clone writes it.
    await addPublicAndBuild(s.url, `file://${up.dir}/`, 'same');
    assert.equal((await call(s.url, 'GET', '/v1/repos/same')).json.url, `file://${up.dir}/`);
    for (const url of [up.dir, `file://${up.dir}`, `file://${up.dir}/`, `${up.dir}//`, `${up.dir}/`]) {
      const r = await call(s.url, 'POST', '/v1/repos', { url, name: 'same' });
      assert.equal(r.status, 200, `${url}: ${r.text}`);
      assert.equal(r.json.created, false);
      assert.equal(r.json.url, `file://${up.dir}/`);
    }
    const c = await call(s.url, 'POST', '/v1/repos', { url: other.dir, name: 'same' });
    assert.equal(c.status, 409, c.text);
    assert.equal(c.json.code, 'conflict');
    assert.equal(c.json.error, `same is already registered for file://${up.dir}/`);
  } finally {
    await s.close();
  }
});
