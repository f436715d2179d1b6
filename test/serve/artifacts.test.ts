/**
 * One real server, one real upstream built once; then the resolve answer and
 * the artifact endpoint's HTTP semantics (ETag, caching, ranges, HEAD, 304).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { addAndBuild, call, git, makeUpstream, startTestServer, tempDir } from './helpers.js';
import { parseManifest, manifestArtifacts, type Manifest } from '../../src/clonepack/manifest.js';

let server: Awaited<ReturnType<typeof startTestServer>>;
let upstream: { dir: string; head: string };
let digest: string;
let manifestBytes: Buffer;
let manifest: Manifest;

before(async () => {
  const work = tempDir();
  upstream = makeUpstream(work);
  server = await startTestServer();
  await addAndBuild(server.url, upstream.dir, 'demo');
});

after(async () => {
  await server?.close();
});

/** Raw HTTP, so HEAD bodies and exact headers are visible as sent. */
function raw(method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(server.url + path, { method, headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

test('resolve answers with the built ref, commit and manifest digest', async () => {
  const r = await call(server.url, 'GET', '/v1/repos/demo/resolve');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.repo, 'demo');
  assert.equal(r.json.upstream, upstream.dir);
  assert.equal(r.json.ref, 'refs/heads/main');
  assert.equal(r.json.commit, upstream.head);
  assert.match(r.json.manifest.digest, /^[0-9a-f]{64}$/);
  assert.equal(typeof r.json.builtAt, 'number');
  for (const k of ['editable', 'shallow', 'files']) assert.ok(Number.isSafeInteger(r.json.sizes[k]) && r.json.sizes[k] > 0, k);
  assert.match(r.headers.get('cache-control') ?? '', /no-store/); // a mutable answer must not be cached
  digest = r.json.manifest.digest;
  // ref=HEAD and ref=main name the same build.
  for (const q of ['?ref=HEAD', '?ref=main', '?ref=refs/heads/main', '?ref=refs%2Fheads%2Fmain']) {
    const again = await call(server.url, 'GET', `/v1/repos/demo/resolve${q}`);
    assert.equal(again.status, 200, q);
    assert.equal(again.json.manifest.digest, digest, q);
  }
  const a = await raw('GET', `/v1/artifacts/${digest}`);
  manifestBytes = a.body;
  assert.equal(r.json.manifest.size, manifestBytes.length);
  manifest = parseManifest(manifestBytes);
  assert.equal(manifest.commit, upstream.head);
  assert.equal(manifest.ref, 'refs/heads/main');
  assert.equal(manifest.defaultBranch, 'main');
  const tagOid = git(upstream.dir, ['rev-parse', 'v1']);
  const tagTarget = git(upstream.dir, ['rev-parse', 'v1^{}']);
  assert.deepEqual(manifest.refs, [
    { name: 'refs/heads/dev', oid: tagTarget },
    { name: 'refs/heads/main', oid: upstream.head },
    { name: 'refs/tags/v1', oid: tagOid, peeled: tagTarget },
  ]);
});

test('a tag that was not built yet answers 202 with a job, then resolves', async () => {
  const r = await call(server.url, 'GET', '/v1/repos/demo/resolve?ref=v1');
  if (r.status === 202) {
    assert.equal(r.json.status, 'building');
    assert.equal(typeof r.json.job.id, 'number');
    const deadline = Date.now() + 30_000;
    for (;;) {
      const j = await call(server.url, 'GET', `/v1/jobs/${r.json.job.id}`);
      if (j.json.state === 'succeeded') break;
      assert.notEqual(j.json.state, 'failed', j.json.error);
      assert.ok(Date.now() < deadline);
      await new Promise((res) => setTimeout(res, 50));
    }
  } else {
    assert.equal(r.status, 200, r.text);
  }
  const done = await call(server.url, 'GET', '/v1/repos/demo/resolve?ref=v1');
  assert.equal(done.status, 200, done.text);
  assert.equal(done.json.ref, 'refs/tags/v1');
  assert.equal(done.json.commit, git(upstream.dir, ['rev-parse', 'v1^{}']));
  // An unknown ref is a 404, not a build.
  const missing = await call(server.url, 'GET', '/v1/repos/demo/resolve?ref=nope');
  assert.equal(missing.status, 404);
  assert.equal(missing.json.code, 'not-found');
  const bad = await call(server.url, 'GET', '/v1/repos/demo/resolve?ref=a..b');
  assert.equal(bad.status, 400);
  assert.equal(bad.json.code, 'usage');
});

test('GET an artifact: bytes hash to the digest, immutable caching headers', async () => {
  const r = await raw('GET', `/v1/artifacts/${digest}`);
  assert.equal(r.status, 200);
  assert.equal(createHash('sha256').update(r.body).digest('hex'), digest);
  assert.equal(r.headers.etag, `"${digest}"`);
  assert.equal(r.headers['cache-control'], 'public, max-age=31536000, immutable');
  assert.equal(r.headers['accept-ranges'], 'bytes');
  assert.equal(r.headers['content-length'], String(r.body.length));
  assert.equal(r.headers['content-type'], 'application/octet-stream');
});

test('every artifact the manifest names is served and matches its digest and size', async () => {
  const list = manifestArtifacts(manifest);
  assert.ok(list.length >= 3);
  for (const a of list) {
    const r = await raw('GET', `/v1/artifacts/${a.digest}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.length, a.size);
    assert.equal(createHash('sha256').update(r.body).digest('hex'), a.digest);
  }
});

test('HEAD gives the headers and no body', async () => {
  const r = await raw('HEAD', `/v1/artifacts/${digest}`);
  assert.equal(r.status, 200);
  assert.equal(r.body.length, 0);
  assert.equal(r.headers['content-length'], String(manifestBytes.length));
  assert.equal(r.headers.etag, `"${digest}"`);
  assert.equal(r.headers['accept-ranges'], 'bytes');
  assert.equal(r.headers['cache-control'], 'public, max-age=31536000, immutable');
  const missing = await raw('HEAD', `/v1/artifacts/${'0'.repeat(64)}`);
  assert.equal(missing.status, 404);
  assert.equal(missing.body.length, 0);
});

test('byte ranges: first bytes, open-ended, suffix', async () => {
  const size = manifestBytes.length;
  assert.ok(size > 20);
  const cases: [string, number, number][] = [
    ['bytes=0-9', 0, 9],
    ['bytes=10-', 10, size - 1],
    ['bytes=-5', size - 5, size - 1],
    ['bytes=0-0', 0, 0],
    [`bytes=${size - 1}-`, size - 1, size - 1],
    [`bytes=5-${size + 1000}`, 5, size - 1], // end past the size is clamped
    [`bytes=-${size + 1000}`, 0, size - 1], // suffix longer than the artifact: all of it
  ];
  for (const [range, start, end] of cases) {
    const r = await raw('GET', `/v1/artifacts/${digest}`, { range });
    assert.equal(r.status, 206, range);
    assert.equal(r.headers['content-range'], `bytes ${start}-${end}/${size}`, range);
    assert.equal(r.headers['content-length'], String(end - start + 1), range);
    assert.deepEqual(r.body, manifestBytes.subarray(start, end + 1), range);
    assert.equal(r.headers.etag, `"${digest}"`);
  }
  // HEAD with a range: the 206 headers, no body.
  const h = await raw('HEAD', `/v1/artifacts/${digest}`, { range: 'bytes=0-9' });
  assert.equal(h.status, 206);
  assert.equal(h.headers['content-range'], `bytes 0-9/${size}`);
  assert.equal(h.body.length, 0);
});

test('unsatisfiable ranges answer 416 with bytes */size', async () => {
  const size = manifestBytes.length;
  for (const range of ['bytes=999999999-', `bytes=${size}-`, 'bytes=-0']) {
    const r = await raw('GET', `/v1/artifacts/${digest}`, { range });
    assert.equal(r.status, 416, range);
    assert.equal(r.headers['content-range'], `bytes */${size}`, range);
    assert.equal(r.body.length, 0, range);
  }
});

test('malformed or multiple ranges are ignored (200, whole artifact)', async () => {
  for (const range of ['bytes=0-1,4-5', 'items=0-1', 'bytes=abc', 'bytes=-', 'bytes 0-1']) {
    const r = await raw('GET', `/v1/artifacts/${digest}`, { range });
    assert.equal(r.status, 200, range);
    assert.deepEqual(r.body, manifestBytes, range);
  }
});

test('If-Range with another validator sends the whole artifact; with ours, the range', async () => {
  const other = await raw('GET', `/v1/artifacts/${digest}`, { range: 'bytes=0-9', 'if-range': '"something-else"' });
  assert.equal(other.status, 200);
  assert.deepEqual(other.body, manifestBytes);
  const same = await raw('GET', `/v1/artifacts/${digest}`, { range: 'bytes=0-9', 'if-range': `"${digest}"` });
  assert.equal(same.status, 206);
  assert.deepEqual(same.body, manifestBytes.subarray(0, 10));
});

test('If-None-Match with the digest answers 304 without a body', async () => {
  for (const inm of [`"${digest}"`, `"abc", "${digest}"`, '*']) {
    const r = await raw('GET', `/v1/artifacts/${digest}`, { 'if-none-match': inm });
    assert.equal(r.status, 304, inm);
    assert.equal(r.body.length, 0);
    assert.equal(r.headers.etag, `"${digest}"`);
  }
  const miss = await raw('GET', `/v1/artifacts/${digest}`, { 'if-none-match': '"abc"' });
  assert.equal(miss.status, 200);
  assert.deepEqual(miss.body, manifestBytes);
});

test('If-None-Match uses weak comparison (RFC 9110 13.1.2): W/"<digest>" also answers 304', async () => {
  const r = await raw('GET', `/v1/artifacts/${digest}`, { 'if-none-match': `W/"${digest}"` });
  assert.equal(r.status, 304);
  assert.equal(r.body.length, 0);
  // If-Range, on the other hand, needs a strong match: a weak validator means "send it all".
  const weakRange = await raw('GET', `/v1/artifacts/${digest}`, { range: 'bytes=0-9', 'if-range': `W/"${digest}"` });
  assert.equal(weakRange.status, 200);
  assert.deepEqual(weakRange.body, manifestBytes);
});

test('a malformed digest is a 400, an unknown one a 404', async () => {
  for (const bad of ['xyz', digest.toUpperCase(), digest.slice(1), `${digest}0`, '..%2F..%2Fsnapclone.db', `${digest.slice(0, 63)}g`]) {
    const r = await call(server.url, 'GET', `/v1/artifacts/${bad}`);
    assert.equal(r.status, 400, bad);
    assert.equal(r.json.code, 'invalid', bad);
  }
  const r = await call(server.url, 'GET', `/v1/artifacts/${'0'.repeat(64)}`);
  assert.equal(r.status, 404);
  assert.equal(r.json.code, 'artifact-missing'); // not "unknown repository": the client exits 12, not 3
  assert.equal(typeof r.json.error, 'string');
});

test('read endpoints: repos list, status, jobs, healthz, unknown routes', async () => {
  const list = await call(server.url, 'GET', '/v1/repos');
  assert.equal(list.status, 200);
  assert.deepEqual(list.json, { repos: [{ name: 'demo', url: upstream.dir, defaultBranch: 'main', visibility: 'public' }] });
  const st = await call(server.url, 'GET', '/v1/repos/demo');
  assert.equal(st.status, 200);
  assert.equal(st.json.defaultBranch, 'main');
  const main = st.json.refs.find((r: any) => r.ref === 'refs/heads/main');
  assert.equal(main.commit, upstream.head);
  assert.equal(main.manifest.digest, digest);
  assert.equal(main.manifest.size, manifestBytes.length);
  assert.ok(st.json.jobs.length >= 1);
  assert.ok(st.json.jobs.every((j: any) => j.repo === 'demo'));
  const h = await call(server.url, 'GET', '/healthz');
  assert.deepEqual([h.status, h.json], [200, { status: 'ok', quarantined: 0 }]);
  for (const path of ['/nope', '/v1/nope', '/v1/repos/demo/nope', '/v1/jobs/999999']) {
    const r = await call(server.url, 'GET', path);
    assert.equal(r.status, 404, path);
    assert.equal(r.json.code, 'not-found', path);
  }
  const notANumber = await call(server.url, 'GET', '/v1/jobs/abc');
  assert.ok(notANumber.status === 404 || notANumber.status === 400, `GET /v1/jobs/abc answered ${notANumber.status}`);
  const badEscape = await call(server.url, 'GET', '/v1/repos/%E0%A4%A/resolve');
  assert.equal(badEscape.status, 400);
});
