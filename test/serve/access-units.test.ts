/**
 * The pure parts of access control, with an injected clock: the per-address token bucket and
 * its settings, the signed-query key, and the signer's checks (expiry, tampering, coverage).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { isUncounted, RateLimiter, rateLimitFrom } from '../../src/serve/access/rate-limit.js';
import { ArtifactSigner, urlKeyFrom, urlSecondsFrom } from '../../src/serve/access/signed-urls.js';
import { AccessDenied, upstreamInfo } from '../../src/serve/access/upstream-auth.js';
import { SnapError } from '../../src/util/errors.js';
import { sha256Hex } from '../../src/util/hash.js';
import { encodeManifest, MANIFEST_FORMAT, MANIFEST_VERSION, type Manifest } from '../../src/clonepack/manifest.js';

test('rate limit settings: default 50/200, 0 off, malformed refused', () => {
  assert.deepEqual(rateLimitFrom({}), { perSecond: 50, burst: 200, trustProxy: false });
  assert.deepEqual(rateLimitFrom({ SNAPCLONE_RATE_LIMIT: '2.5/10', SNAPCLONE_TRUST_PROXY: '1' }), { perSecond: 2.5, burst: 10, trustProxy: true });
  assert.equal(rateLimitFrom({ SNAPCLONE_RATE_LIMIT: '0' }), null);
  for (const bad of ['50', '/3', '0/5', '5/0', 'x/y', '-1/3']) assert.throws(() => rateLimitFrom({ SNAPCLONE_RATE_LIMIT: bad }), SnapError, bad);
});

test('token bucket: a burst, then the rate; Retry-After is when the next token arrives; addresses are separate', () => {
  let now = 0;
  const rl = new RateLimiter({ perSecond: 2, burst: 3, trustProxy: false }, () => now);
  assert.deepEqual([1, 2, 3].map(() => rl.take('a').ok), [true, true, true]);
  assert.deepEqual(rl.take('a'), { ok: false, retryAfter: 1 });
  assert.equal(rl.take('b').ok, true, 'another address has its own bucket');
  now += 499;
  assert.equal(rl.take('a').ok, false);
  now += 2;
  assert.equal(rl.take('a').ok, true, 'one token after 500 ms at 2/s');
  now += 60_000;
  assert.deepEqual([1, 2, 3, 4].map(() => rl.take('a').ok), [true, true, true, false], 'refills to the burst, not beyond');
  const slow = new RateLimiter({ perSecond: 0.1, burst: 1, trustProxy: false }, () => now);
  slow.take('c');
  assert.deepEqual(slow.take('c'), { ok: false, retryAfter: 10 });
});

test('client address: the socket peer, or the last X-Forwarded-For hop (the trusted proxy\'s) only when the proxy is trusted', () => {
  const req = { socket: { remoteAddress: '10.0.0.9' }, headers: { 'x-forwarded-for': '203.0.113.7, 10.0.0.1' } } as unknown as IncomingMessage;
  assert.equal(new RateLimiter({ perSecond: 1, burst: 1, trustProxy: false }).clientOf(req), '10.0.0.9');
  // The client wrote 203.0.113.7 itself; the proxy appended the address it saw: 10.0.0.1.
  assert.equal(new RateLimiter({ perSecond: 1, burst: 1, trustProxy: true }).clientOf(req), '10.0.0.1');
  assert.ok(isUncounted('GET', '/v1/artifacts/abc') && isUncounted('HEAD', '/v1/artifacts/abc') && isUncounted('GET', '/healthz'));
  assert.ok(!isUncounted('POST', '/v1/artifacts/abc/report') && !isUncounted('GET', '/v1/repos'));
});

test('URL key: SNAPCLONE_URL_KEY is one key for every server; else from the admin token; else random', () => {
  const k = urlKeyFrom({ SNAPCLONE_URL_KEY: 'sixteen chars at least' }, null);
  assert.deepEqual(urlKeyFrom({ SNAPCLONE_URL_KEY: 'sixteen chars at least' }, Buffer.alloc(32, 1)), k, 'the env key wins over the token');
  assert.throws(() => urlKeyFrom({ SNAPCLONE_URL_KEY: 'short' }, null), SnapError);
  const fromToken = urlKeyFrom({}, Buffer.alloc(32, 7));
  assert.deepEqual(urlKeyFrom({}, Buffer.alloc(32, 7)), fromToken);
  assert.notDeepEqual(fromToken, Buffer.alloc(32, 7), 'not the token hash itself');
  assert.notDeepEqual(urlKeyFrom({}, null), urlKeyFrom({}, null));
  assert.equal(urlSecondsFrom({}), 3600);
  assert.throws(() => urlSecondsFrom({ SNAPCLONE_URL_SECONDS: '5' }), SnapError);
});

test('signer: covers the manifest and what it names, until it expires; anything altered is refused', async () => {
  const art = sha256Hex('a chunk');
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    mode: 'shallow',
    ref: 'refs/heads/main',
    commit: null,
    defaultBranch: 'main',
    refs: [],
    headPacks: [],
    historyPacks: [],
    table: { digest: art, size: 7, entries: 0, rawSize: 0 },
    archive: { codec: 'zstd', bytes: 0, chunks: [] },
  } as unknown as Manifest;
  const bytes = encodeManifest(manifest);
  const m = sha256Hex(bytes);
  let now = 1_000_000;
  const store = { read: async (d: string) => (d === m ? bytes : Promise.reject(new Error('absent'))) };
  const signer = new ArtifactSigner(Buffer.alloc(32, 3), 60, store, () => now);
  const other = new ArtifactSigner(Buffer.alloc(32, 4), 60, store, () => now);
  const { query, expiresAt } = signer.sign(m);
  assert.equal(expiresAt, now + 60_000);
  const q = new URLSearchParams(query);
  await signer.verify(m, q);
  await signer.verify(art, q);
  const refused = async (digest: string, params: URLSearchParams, why: RegExp) => {
    await assert.rejects(signer.verify(digest, params), (e: unknown) => e instanceof AccessDenied && e.status === 403 && why.test(e.message));
  };
  await refused(sha256Hex('not named'), q, /another manifest/);
  await assert.rejects(other.verify(m, q), AccessDenied, 'another key');
  await refused(m, new URLSearchParams(query.replace(/exp=\d+/, `exp=${expiresAt + 1}`)), /bad signature/);
  await refused(m, new URLSearchParams(query.replace(/m=[0-9a-f]+/, `m=${art}`)), /bad signature/);
  await refused(m, new URLSearchParams(`m=${m}&exp=${expiresAt}`), /malformed/);
  now = expiresAt;
  await refused(m, q, /expired/);
});

test('upstream info: protocol, host and path without user info or a leading slash; none for other transports', () => {
  assert.deepEqual(upstreamInfo('https://git.example.com:8443/team/My%20Repo.git'), { protocol: 'https', host: 'git.example.com:8443', path: 'team/My Repo.git' });
  assert.deepEqual(upstreamInfo('http://h/x'), { protocol: 'http', host: 'h', path: 'x' });
  assert.equal(upstreamInfo('ssh://git@h/x'), null);
  assert.equal(upstreamInfo('/srv/x'), null);
});
