/**
 * Builds over time: a newer sync replaces the served build, a failed sync keeps
 * serving the previous one, and two servers build identical clonepacks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { addAndBuild, call, commit, makeUpstream, startTestServer, tempDir, waitJob } from './helpers.js';
import { manifestArtifacts, parseManifest } from '../../src/clonepack/manifest.js';

async function resolveDigest(base: string, name: string, ref = ''): Promise<{ digest: string; commit: string }> {
  const r = await call(base, 'GET', `/v1/repos/${encodeURIComponent(name)}/resolve${ref ? `?ref=${ref}` : ''}`);
  assert.equal(r.status, 200, r.text);
  return { digest: r.json.manifest.digest, commit: r.json.commit };
}

async function sync(base: string, name: string, body: unknown = {}): Promise<any> {
  const r = await call(base, 'POST', `/v1/repos/${encodeURIComponent(name)}/sync`, body);
  assert.equal(r.status, 202, r.text);
  assert.equal(typeof r.json.job.id, 'number');
  return waitJob(base, r.json.job.id);
}

test('a newer sync wins: commit A, sync, commit B, sync, resolve shows B', async () => {
  const up = makeUpstream(tempDir());
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'moving');
    const a = await resolveDigest(s.url, 'moving');
    assert.equal(a.commit, up.head);

    // Sync without upstream changes: still A, same manifest.
    const same = await sync(s.url, 'moving');
    assert.equal(same.state, 'succeeded', same.error);
    assert.deepEqual(await resolveDigest(s.url, 'moving'), a);

    const commitB = commit(up.dir, { 'src/a.txt': 'changed\n', 'new.txt': 'new\n' }, 'third');
    const job = await sync(s.url, 'moving');
    assert.equal(job.state, 'succeeded', job.error);
    assert.equal(job.commit, commitB);
    const b = await resolveDigest(s.url, 'moving');
    assert.equal(b.commit, commitB);
    assert.notEqual(b.digest, a.digest);
    const m = parseManifest(Buffer.from(await (await fetch(`${s.url}/v1/artifacts/${b.digest}`)).arrayBuffer()));
    assert.equal(m.commit, commitB);
    assert.equal(m.refs.find((r) => r.name === 'refs/heads/main')?.oid, commitB);

    // The old build's artifacts are still served (clients in flight may need them).
    assert.equal((await fetch(`${s.url}/v1/artifacts/${a.digest}`)).status, 200);

    const st = await call(s.url, 'GET', '/v1/repos/moving');
    assert.equal(st.status, 200);
    const main = st.json.refs.find((r: any) => r.ref === 'refs/heads/main');
    assert.ok(main, JSON.stringify(st.json.refs));
    assert.equal(main.commit, commitB);
    assert.equal(main.manifest.digest, b.digest);
    assert.equal(typeof main.builtAt, 'number');
    for (const k of ['editable', 'shallow', 'files']) assert.equal(typeof main.sizes[k], 'number', k);
    // Jobs: newest first, all three of them, all succeeded.
    assert.equal(st.json.jobs.length, 3);
    assert.deepEqual(
      st.json.jobs.map((j: any) => j.state),
      ['succeeded', 'succeeded', 'succeeded'],
    );
    assert.equal(st.json.jobs[0].id, job.id);
    assert.ok(st.json.jobs[0].id > st.json.jobs[1].id && st.json.jobs[1].id > st.json.jobs[2].id);
    assert.equal(st.json.jobs[0].commit, commitB);
  } finally {
    await s.close();
  }
});

test('syncing a named branch builds it; a branch that does not exist fails the job', async () => {
  const up = makeUpstream(tempDir());
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'branches');
    const job = await sync(s.url, 'branches', { branch: 'dev' });
    assert.equal(job.state, 'succeeded', job.error);
    assert.equal(job.ref, 'refs/heads/dev');
    const dev = await resolveDigest(s.url, 'branches', 'dev');
    const m = parseManifest(Buffer.from(await (await fetch(`${s.url}/v1/artifacts/${dev.digest}`)).arrayBuffer()));
    assert.equal(m.ref, 'refs/heads/dev');
    assert.equal(m.commit, dev.commit);
    const bad = await call(s.url, 'POST', '/v1/repos/branches/sync', { branch: 'a..b' });
    assert.equal(bad.status, 400);
    const gone = await sync(s.url, 'branches', { branch: 'no-such-branch' });
    assert.equal(gone.state, 'failed');
    assert.match(gone.error, /no-such-branch/);
    // main and dev are still served.
    await resolveDigest(s.url, 'branches');
    assert.deepEqual(await resolveDigest(s.url, 'branches', 'dev'), dev);
  } finally {
    await s.close();
  }
});

test('a failed build keeps serving the previous one', async () => {
  const parent = tempDir();
  const up = makeUpstream(parent);
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'fragile');
    const before = await resolveDigest(s.url, 'fragile');

    renameSync(up.dir, `${up.dir}.moved`);
    const job = await sync(s.url, 'fragile');
    assert.equal(job.state, 'failed');
    assert.equal(typeof job.error, 'string');
    assert.ok(job.error.length > 0);
    assert.equal(typeof job.finishedAt, 'number');

    assert.deepEqual(await resolveDigest(s.url, 'fragile'), before);
    // The previous build's artifacts are intact.
    const bytes = Buffer.from(await (await fetch(`${s.url}/v1/artifacts/${before.digest}`)).arrayBuffer());
    assert.equal(createHash('sha256').update(bytes).digest('hex'), before.digest);
    for (const a of manifestArtifacts(parseManifest(bytes))) {
      const r = await fetch(`${s.url}/v1/artifacts/${a.digest}`, { method: 'HEAD' });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-length'), String(a.size));
    }

    const st = await call(s.url, 'GET', '/v1/repos/fragile');
    assert.equal(st.json.jobs[0].id, job.id);
    assert.equal(st.json.jobs[0].state, 'failed');
    assert.equal(st.json.jobs[0].error, job.error);
    assert.equal(st.json.jobs[1].state, 'succeeded');
    assert.equal(st.json.refs.find((r: any) => r.ref === 'refs/heads/main').manifest.digest, before.digest);

    // Once the upstream is back, a sync succeeds again.
    renameSync(`${up.dir}.moved`, up.dir);
    const again = await sync(s.url, 'fragile');
    assert.equal(again.state, 'succeeded', again.error);
    assert.deepEqual(await resolveDigest(s.url, 'fragile'), before);
  } finally {
    await s.close();
  }
});

test('determinism: two servers with separate data dirs build the same manifest', async () => {
  const up = makeUpstream(tempDir());
  const [s1, s2] = await Promise.all([startTestServer(), startTestServer()]);
  try {
    assert.notEqual(s1.dataDir, s2.dataDir);
    await addAndBuild(s1.url, up.dir, 'same');
    await addAndBuild(s2.url, up.dir, 'same');
    const d1 = await resolveDigest(s1.url, 'same');
    const d2 = await resolveDigest(s2.url, 'same');
    assert.equal(d1.commit, up.head);
    assert.deepEqual(d1, d2);
    // The tag too (built on demand by each server).
    for (const s of [s1, s2]) {
      const job = await sync(s.url, 'same', { branch: 'refs/tags/v1' });
      assert.equal(job.state, 'succeeded', job.error);
    }
    assert.deepEqual(await resolveDigest(s1.url, 'same', 'v1'), await resolveDigest(s2.url, 'same', 'v1'));
  } finally {
    await Promise.all([s1.close(), s2.close()]);
  }
});
