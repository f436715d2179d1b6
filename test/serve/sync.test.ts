/**
 * Builds over time: a newer sync replaces the served build, a failed sync keeps
 * serving the previous one, and two servers build identical clonepacks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { addAndBuild, call, commit, git, makeUpstream, startTestServer, tempDir, waitJob } from './helpers.js';
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
    assert.equal(bad.json.code, 'usage');
    // main and dev are still served.
    await resolveDigest(s.url, 'branches');
    assert.deepEqual(await resolveDigest(s.url, 'branches', 'dev'), dev);
  } finally {
    await s.close();
  }
});

test('sync --branch takes a tag name like clone --branch does: a branch first, then a tag', async () => {
  const up = makeUpstream(tempDir());
  git(up.dir, ['tag', '4.0.0', 'HEAD~1']);
  git(up.dir, ['branch', 'both', 'HEAD']);
  git(up.dir, ['tag', 'both', 'HEAD~1']);
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'tagged');
    const job = await sync(s.url, 'tagged', { branch: '4.0.0' });
    assert.equal(job.state, 'succeeded', job.error);
    assert.equal(job.ref, 'refs/tags/4.0.0');
    const tag = await resolveDigest(s.url, 'tagged', '4.0.0');
    assert.equal(tag.commit, git(up.dir, ['rev-parse', 'HEAD~1']));
    const both = await sync(s.url, 'tagged', { branch: 'both' });
    assert.equal(both.ref, 'refs/heads/both', 'a branch wins over a tag of the same name');
    const full = await sync(s.url, 'tagged', { branch: 'refs/tags/both' });
    assert.equal(full.state, 'succeeded', full.error);
    assert.equal(full.ref, 'refs/tags/both');
  } finally {
    await s.close();
  }
});

test('sync --branch of a ref the upstream lacks is a 404 before anything is queued; a clone of it then says not found', async () => {
  const up = makeUpstream(tempDir());
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'strict');
    const jobsBefore = (await call(s.url, 'GET', '/v1/repos/strict')).json.jobs.length;
    for (const branch of ['nosuch', 'refs/heads/nosuch', 'refs/tags/dev']) {
      const r = await call(s.url, 'POST', '/v1/repos/strict/sync', { branch });
      assert.equal(r.status, 404, `${branch}: ${r.text}`);
      assert.equal(r.json.code, 'not-found');
      assert.match(r.json.error, /nosuch|dev/);
    }
    assert.equal((await call(s.url, 'GET', '/v1/repos/strict')).json.jobs.length, jobsBefore, 'nothing was queued');
    const clone = await call(s.url, 'GET', '/v1/repos/strict/resolve?ref=nosuch');
    assert.equal(clone.status, 404, clone.text);
    assert.equal(clone.json.code, 'not-found');
    // The check asks the upstream, not the mirror: a branch pushed since the last sync is found.
    git(up.dir, ['branch', 'fresh']);
    const fresh = await sync(s.url, 'strict', { branch: 'fresh' });
    assert.equal(fresh.state, 'succeeded', fresh.error);
    assert.equal(fresh.ref, 'refs/heads/fresh');
  } finally {
    await s.close();
  }
});

test('a failed job carries its error code: an unreachable upstream is unreachable, not a build failure', async () => {
  const up = makeUpstream(tempDir());
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'flaky');
    renameSync(up.dir, `${up.dir}.away`);
    const job = await sync(s.url, 'flaky');
    assert.equal(job.state, 'failed');
    assert.equal(job.errorCode, 'unreachable');
    const st = await call(s.url, 'GET', '/v1/repos/flaky');
    assert.equal(st.json.jobs[0].errorCode, 'unreachable');
    assert.equal(st.json.jobs[1].errorCode, null);
    // With --branch the upstream is asked before queuing: the answer itself is the 502.
    const direct = await call(s.url, 'POST', '/v1/repos/flaky/sync', { branch: 'dev' });
    assert.equal(direct.status, 502, direct.text);
    assert.equal(direct.json.code, 'unreachable');
  } finally {
    await s.close();
  }
});

test('a failed sync blocks only the refs it was about: an unbuilt tag the mirror has still builds', async () => {
  const up = makeUpstream(tempDir());
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'blocked');
    renameSync(up.dir, `${up.dir}.away`);
    assert.equal((await sync(s.url, 'blocked')).state, 'failed');
    renameSync(`${up.dir}.away`, up.dir);
    const r = await call(s.url, 'GET', '/v1/repos/blocked/resolve?ref=v1');
    assert.equal(r.status, 202, r.text);
    assert.equal(r.json.job.ref, 'refs/tags/v1');
    assert.equal((await waitJob(s.url, r.json.job.id)).state, 'succeeded');
    assert.equal((await resolveDigest(s.url, 'blocked', 'v1')).commit, git(up.dir, ['rev-parse', 'v1^{commit}']));
  } finally {
    await s.close();
  }
});

test('an on-demand build that fails because the ref is gone answers not-found, and blocks only that ref', async () => {
  const up = makeUpstream(tempDir());
  git(up.dir, ['tag', 'doomed', 'HEAD~1']);
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'vanish');
    git(up.dir, ['tag', '-d', 'doomed']); // the mirror still has it until the next fetch
    const r = await call(s.url, 'GET', '/v1/repos/vanish/resolve?ref=doomed');
    assert.equal(r.status, 202, r.text);
    const job = await waitJob(s.url, r.json.job.id);
    assert.equal(job.state, 'failed');
    assert.equal(job.errorCode, 'not-found');
    const again = await call(s.url, 'GET', '/v1/repos/vanish/resolve?ref=doomed');
    assert.equal(again.status, 404, again.text);
    assert.equal(again.json.code, 'not-found');
    // Other refs are not blocked by it.
    const dev = await call(s.url, 'GET', '/v1/repos/vanish/resolve?ref=dev');
    assert.equal(dev.status, 202, dev.text);
    assert.equal((await waitJob(s.url, dev.json.job.id)).state, 'succeeded');
    await resolveDigest(s.url, 'vanish');
  } finally {
    await s.close();
  }
});

test('a sync rebuilds a commit only when a ref moved to it; every full manifest lists the current branches and tags', async () => {
  const up = makeUpstream(tempDir());
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'storm');
    // v1 built on demand, dev built by sync --branch.
    const onDemand = await call(s.url, 'GET', '/v1/repos/storm/resolve?ref=v1');
    assert.equal(onDemand.status, 202, onDemand.text);
    assert.equal((await waitJob(s.url, onDemand.json.job.id)).state, 'succeeded');
    assert.equal((await sync(s.url, 'storm', { branch: 'dev' })).state, 'succeeded');
    const refsNow = async () =>
      Object.fromEntries((await call(s.url, 'GET', '/v1/repos/storm')).json.refs.map((r: any) => [r.ref, { commit: r.commit, digest: r.manifest.digest, builtAt: r.builtAt }]));
    const manifestOf = async (digest: string) => parseManifest(Buffer.from(await (await fetch(`${s.url}/v1/artifacts/${digest}`)).arrayBuffer()));
    // What depends on the commit only: the HEAD packs and the table.
    const commitPart = async (digest: string) => {
      const m = await manifestOf(digest);
      return JSON.stringify([m.headPacks, m.table, m.archive]);
    };
    const before = await refsNow();
    assert.deepEqual(Object.keys(before), ['refs/heads/dev', 'refs/heads/main', 'refs/tags/v1']);

    // A sync with nothing new rebuilds nothing and publishes nothing.
    assert.equal((await sync(s.url, 'storm')).state, 'succeeded');
    assert.deepEqual(await refsNow(), before, 'a sync with nothing new rebuilt something');

    // Another ref changes (a new tag, a push to dev): v1's and main's commits are not built
    // again (same HEAD packs, table, archive), but their full manifests list v2 and dev's new tip.
    git(up.dir, ['tag', 'v2']);
    git(up.dir, ['checkout', '-q', 'dev']);
    const devMoved = commit(up.dir, { 'dev.txt': 'dev\n' }, 'on dev');
    git(up.dir, ['checkout', '-q', 'main']);
    assert.equal((await sync(s.url, 'storm')).state, 'succeeded');
    const afterDev = await refsNow();
    for (const ref of ['refs/heads/main', 'refs/tags/v1']) {
      assert.equal(afterDev[ref].commit, before[ref].commit);
      assert.notEqual(afterDev[ref].digest, before[ref].digest, `${ref} keeps a stale ref list`);
      assert.equal(await commitPart(afterDev[ref].digest), await commitPart(before[ref].digest), `${ref}'s commit was built again`);
      const m = await manifestOf(afterDev[ref].digest);
      assert.ok(m.refs.some((r) => r.name === 'refs/tags/v2'));
      assert.equal(m.refs.find((r) => r.name === 'refs/heads/dev')!.oid, devMoved);
    }
    assert.equal(afterDev['refs/heads/dev'].commit, devMoved);
    assert.equal(afterDev['refs/tags/v2'], undefined, 'a plain sync builds no ref nobody asked for');

    // The default branch moves: its commit is built, the tag's is not.
    const mainMoved = commit(up.dir, { 'main.txt': 'main\n' }, 'on main');
    assert.equal((await sync(s.url, 'storm')).state, 'succeeded');
    const afterMain = await refsNow();
    assert.equal(afterMain['refs/heads/main'].commit, mainMoved);
    assert.equal(await commitPart(afterMain['refs/tags/v1'].digest), await commitPart(before['refs/tags/v1'].digest));
    assert.equal(await commitPart(afterMain['refs/heads/dev'].digest), await commitPart(afterDev['refs/heads/dev'].digest));
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
