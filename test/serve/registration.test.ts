/**
 * Registering upstreams: errors, idempotency, conflicts, name rules, secrets,
 * and the admin token.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { addAndBuild, call, makeUpstream, startTestServer, stderrLog, tempDir, waitJob } from './helpers.js';
import { startServer } from '../../src/serve/server.js';
import { SnapError } from '../../src/util/errors.js';

let server: Awaited<ReturnType<typeof startTestServer>>;
let upstream: { dir: string; head: string };
let work: string;

before(async () => {
  work = tempDir();
  upstream = makeUpstream(work);
  server = await startTestServer();
});

after(async () => {
  await server?.close();
});

test('an unknown repository is a 404 JSON error', async () => {
  for (const path of ['/v1/repos/nope', '/v1/repos/nope/resolve', '/v1/repos/team%2Fnope/resolve?ref=main']) {
    const r = await call(server.url, 'GET', path);
    assert.equal(r.status, 404, path);
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(r.json.code, 'not-found');
    assert.equal(typeof r.json.error, 'string');
  }
  const sync = await call(server.url, 'POST', '/v1/repos/nope/sync', {});
  assert.equal(sync.status, 404);
  assert.equal(sync.json.code, 'not-found');
});

test('an unreachable upstream is refused and nothing is registered', async () => {
  const missing = join(work, 'does-not-exist');
  const r = await call(server.url, 'POST', '/v1/repos', { url: missing, name: 'ghost' });
  assert.ok(r.status >= 400 && r.status < 600, `status ${r.status}`);
  assert.equal(typeof r.json.error, 'string');
  assert.equal(r.json.code, 'unreachable');
  const list = await call(server.url, 'GET', '/v1/repos');
  assert.deepEqual(list.json.repos.filter((x: any) => x.name === 'ghost'), []);
  const st = await call(server.url, 'GET', '/v1/repos/ghost');
  assert.equal(st.status, 404);
  // A directory that exists but is not a git repository.
  const notGit = tempDir('snapclone-notgit-');
  const r2 = await call(server.url, 'POST', '/v1/repos', { url: notGit, name: 'ghost2' });
  assert.ok(r2.status >= 400, `status ${r2.status}`);
  assert.equal((await call(server.url, 'GET', '/v1/repos/ghost2')).status, 404);
});

test('a URL with an embedded password is refused and the secret never echoes', async () => {
  const before = stderrLog.length;
  const answers: string[] = [];
  for (const url of ['https://user:secret@example.com/x.git', 'https://user:Pa55w0rdZQ@example.com/x.git', 'https://user:Pa55w0rdZQ@example.com:8443/x.git', 'ssh://git:Pa55w0rdZQ@host/x']) {
    for (const name of ['creds', undefined]) {
      const r = await call(server.url, 'POST', '/v1/repos', name ? { url, name } : { url });
      answers.push(r.text);
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.code, 'usage', 'a bad URL is a usage error (exit 2)');
    }
  }
  const list = await call(server.url, 'GET', '/v1/repos');
  answers.push(list.text);
  assert.deepEqual(list.json.repos.filter((x: any) => x.name === 'creds' || x.name === 'x'), []);
  // ("secret" alone appears in the refusal message itself: "does not store secrets".)
  const leaks = (t: string) => t.includes('Pa55w0rdZQ') || t.includes(':secret@') || t.includes('user:secret');
  for (const a of answers) assert.ok(!leaks(a), `response leaks the secret: ${a}`);
  const logged = stderrLog.slice(before).join('');
  assert.ok(!leaks(logged), `server stderr leaks the secret: ${logged}`);
});

test('unsupported upstream URLs are refused', async () => {
  for (const url of ['ext::sh -c touch% /tmp/pwned', '-u/bin/sh', 'relative/path', '', 'a\nb', 'fd::17']) {
    const r = await call(server.url, 'POST', '/v1/repos', { url, name: 'bad' });
    assert.equal(r.status, 400, `${JSON.stringify(url)}: ${r.text}`);
    assert.equal(r.json.code, 'usage', JSON.stringify(url));
  }
  for (const body of ['{', '[]', '"x"', '{}', '{"url": 5}']) {
    const r = await call(server.url, 'POST', '/v1/repos', body);
    assert.equal(r.status, 400, body);
    assert.equal(r.json.code, 'invalid', body);
  }
  const huge = await call(server.url, 'POST', '/v1/repos', { url: upstream.dir, name: 'x', pad: 'y'.repeat(100_000) });
  assert.equal(huge.status, 400);
  assert.equal((await call(server.url, 'GET', '/v1/repos/bad')).status, 404);
});

test('invalid repository names are a 400', async () => {
  for (const name of ['../x', 'a//b', '/abs', 'a b', 'a/', '..', 'x/../y', 'é']) {
    const r = await call(server.url, 'POST', '/v1/repos', { url: upstream.dir, name });
    assert.equal(r.status, 400, `${name}: ${r.text}`);
    assert.equal(r.json.code, 'usage'); // a bad name is a usage error (CONTRACTS.md), so the CLI exits 2
  }
  const list = await call(server.url, 'GET', '/v1/repos');
  assert.deepEqual(list.json.repos.filter((x: any) => x.url === upstream.dir), []);
  for (const path of ['/v1/repos/..%2Fx', '/v1/repos/a%2F%2Fb/resolve', '/v1/repos/..']) {
    const r = await call(server.url, 'GET', path);
    assert.ok(r.status === 400 || r.status === 404, `${path}: ${r.status}`);
  }
});

test('adding the same name and URL twice is idempotent; another URL is a conflict', async () => {
  const first = await call(server.url, 'POST', '/v1/repos', { url: upstream.dir, name: 'twice' });
  assert.equal(first.status, 201, first.text);
  assert.equal(first.json.created, true);
  assert.equal(first.json.name, 'twice');
  assert.equal(typeof first.json.job.id, 'number');
  const job = await waitJob(server.url, first.json.job.id);
  assert.equal(job.state, 'succeeded', job.error);
  const second = await call(server.url, 'POST', '/v1/repos', { url: upstream.dir, name: 'twice' });
  assert.equal(second.status, 200, second.text);
  assert.equal(second.json.created, false);
  assert.equal(second.json.url, upstream.dir);
  // Nothing new was queued: the answer names the job that already built it.
  assert.equal(second.json.job?.id, first.json.job.id);
  const other = makeUpstream(tempDir(), 'other');
  const conflict = await call(server.url, 'POST', '/v1/repos', { url: other.dir, name: 'twice' });
  assert.equal(conflict.status, 409, conflict.text);
  assert.equal(conflict.json.code, 'conflict');
  const st = await call(server.url, 'GET', '/v1/repos/twice');
  assert.equal(st.json.url, upstream.dir);
  const list = await call(server.url, 'GET', '/v1/repos');
  assert.equal(list.json.repos.filter((x: any) => x.name === 'twice').length, 1);
});

test('the name defaults to the last URL segment; names may contain a slash', async () => {
  const r = await call(server.url, 'POST', '/v1/repos', { url: upstream.dir });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.name, 'upstream');
  await waitJob(server.url, r.json.job.id);
  await addAndBuild(server.url, upstream.dir, 'team/proj');
  const res = await call(server.url, 'GET', '/v1/repos/team%2Fproj/resolve');
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.repo, 'team/proj');
  assert.equal(res.json.commit, upstream.head);
  const st = await call(server.url, 'GET', '/v1/repos/team%2Fproj');
  assert.equal(st.status, 200);
  assert.equal(st.json.name, 'team/proj');
});

test('with an admin token, state-changing endpoints need it; reads stay open', async () => {
  const s = await startTestServer({ adminToken: 's3cret' });
  try {
    const body = { url: upstream.dir, name: 'guarded' };
    for (const auth of [undefined, 'Bearer wrong', 'Bearer s3cret2', 'Bearer s3cre', 'bearer s3cret', 's3cret', 'Basic czNjcmV0', 'Bearer ']) {
      const r = await call(s.url, 'POST', '/v1/repos', body, auth ? { authorization: auth } : {});
      assert.equal(r.status, 401, `${auth}: ${r.text}`);
      assert.equal(r.json.code, 'unauthorized');
    }
    assert.deepEqual((await call(s.url, 'GET', '/v1/repos')).json.repos, []);
    const ok = await call(s.url, 'POST', '/v1/repos', body, { authorization: 'Bearer s3cret' });
    assert.equal(ok.status, 201, ok.text);
    const job = await waitJob(s.url, ok.json.job.id);
    assert.equal(job.state, 'succeeded', job.error);
    // Sync needs the token too.
    const noSync = await call(s.url, 'POST', '/v1/repos/guarded/sync', {});
    assert.equal(noSync.status, 401);
    const sync = await call(s.url, 'POST', '/v1/repos/guarded/sync', {}, { authorization: 'Bearer s3cret' });
    assert.equal(sync.status, 202, sync.text);
    await waitJob(s.url, sync.json.job.id);
    // Reads without any token.
    assert.equal((await call(s.url, 'GET', '/v1/repos')).status, 200);
    assert.equal((await call(s.url, 'GET', '/v1/repos/guarded')).status, 200);
    const res = await call(s.url, 'GET', '/v1/repos/guarded/resolve');
    assert.equal(res.status, 200);
    assert.equal((await call(s.url, 'GET', `/v1/artifacts/${res.json.manifest.digest}`)).status, 200);
    assert.equal((await call(s.url, 'GET', `/v1/jobs/${ok.json.job.id}`)).status, 200);
    assert.equal((await call(s.url, 'GET', '/healthz')).status, 200);
  } finally {
    await s.close();
  }
});

test('listening beyond loopback without an admin token is refused', async () => {
  const dataDir = tempDir('snapclone-data-');
  for (const host of ['0.0.0.0', '::', '192.0.2.1']) {
    await assert.rejects(
      startServer({ host, port: 0, dataDir }),
      (e: unknown) => e instanceof SnapError && e.code === 'usage',
      host,
    );
  }
  await assert.rejects(startServer({ host: '0.0.0.0', port: 0, dataDir, adminToken: '' }), (e: unknown) => e instanceof SnapError && e.code === 'usage');
});
