/**
 * Properties of the client's checks of a server's resolve answer
 * (src/client/resolve.ts and downloads.ts), over real HTTP: whatever status and
 * body a server sends (valid answers, answers with one field changed, any JSON,
 * bytes that are not JSON), resolveRef returns a checked answer or throws a
 * SnapError. parseDownloads round-trips valid `downloads` and accepts only
 * http(s) URLs without credentials, keyed by digest; pollDelayMs stays in bounds.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { ServerClient } from '../../src/client/http.js';
import { pollDelayMs, resolveRef, POLL_MAX_MS, POLL_MIN_MS } from '../../src/client/resolve.js';
import { parseDownloads } from '../../src/client/downloads.js';
import { isDigest } from '../../src/util/hash.js';
import { fuzzParams, mutated, parsesOrRefuses, parsesOrRefusesAsync } from './fuzz-support.js';

let answer: { status: number; body: Buffer; headers: Record<string, string> } = { status: 200, body: Buffer.from('{}'), headers: {} };
let server: http.Server;
let url: string;
before(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
    res.end(answer.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const hex = (n: number) => fc.uint8Array({ minLength: n / 2, maxLength: n / 2 }).map((a) => Buffer.from(a).toString('hex'));
const digest = hex(64);
const presigned = fc.tuple(fc.constantFrom('http', 'https'), fc.domain(), fc.webPath(), fc.webQueryParameters()).map(([s, d, p, q]) => `${s}://${d}${p.startsWith('/') ? p : `/${p}`}?${q}`);
const validDownloads = fc.record({ expiresAt: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), urls: fc.dictionary(digest, presigned, { maxKeys: 5 }) });

const validAnswer = fc.record({
  repo: fc.string(),
  upstream: fc.string(),
  ref: fc.string(),
  commit: fc.option(hex(40), { nil: null }),
  mode: fc.constantFrom('shallow', 'files', 'full', undefined),
  manifest: fc.record({ digest, size: fc.integer({ min: 0, max: 256 * 2 ** 20 }) }),
  newer: fc.option(fc.record({ commit: fc.option(hex(40), { nil: null }), job: fc.option(fc.nat(), { nil: null }) }), { nil: null }),
  downloads: fc.option(validDownloads, { nil: null }),
});

/** Text with line breaks, terminal escapes and other control characters among ordinary ones. */
const serverText = fc.array(fc.oneof(fc.constantFrom('boom', ' ', 'x', '\n', '\r', '\x1b[2J', '\x1b]0;title\x07', '\t', '\0', '\u2028', 'é'), fc.string({ maxLength: 5 })), { maxLength: 8 }).map((a) => a.join(''));

/** Bodies a confused or hostile server may send. */
const body = fc.oneof(
  validAnswer.map((a) => Buffer.from(JSON.stringify(a))),
  mutated(validAnswer.map((a) => Buffer.from(JSON.stringify(a)))),
  fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
  fc.constantFrom('null', '[]', '7', '"x"', 'true', '', '{"job":null}', '{"job":{"id":-1}}', '{"job":{"id":3}}', '{"state":"failed","error":"boom","errorCode":"integrity"}').map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
  // Error texts a server sends (an error answer, a failed job): they end up in the client's one-line message.
  // A job being built, with its phase and state of any JSON type (the client shows the phase while it waits).
  fc.record({ job: fc.record({ id: fc.nat() }), phase: fc.oneof(serverText, fc.jsonValue(), fc.constant({ toString: 0 })), state: fc.oneof(fc.constantFrom('running', 'queued'), fc.jsonValue()) }).map((v) => Buffer.from(JSON.stringify(v))),
  fc.record({ job: fc.record({ id: fc.nat() }), state: fc.constant('failed'), error: serverText, errorCode: fc.constantFrom('integrity', 'unreachable', 'nonsense'), code: fc.constantFrom('invalid', 'not-found', 'x') }).map((v) => Buffer.from(JSON.stringify(v))),
);
const status = fc.constantFrom(200, 200, 200, 202, 202, 204, 301, 400, 404, 429, 500, 503);
const retryAfter = fc.option(fc.oneof(fc.constantFrom('0', '1', '1.5', '-1', 'soon', '99999999999'), fc.string({ maxLength: 10 })), { nil: undefined });

test('any resolve answer over HTTP: a checked result or a SnapError', async () => {
  const client = new ServerClient(url);
  try {
    await fc.assert(
      fc.asyncProperty(status, body, retryAfter, fc.boolean(), async (s, b, ra, proxy) => {
        answer = { status: s, body: b, headers: ra === undefined ? {} : { 'retry-after': ra.replace(/[^\x20-\x7e]/g, '') } };
        // The clone's deadline bounds 429 waits; timeoutMs 0 means none is left (a 429 with a
        // Retry-After is then refused at once, not waited out for up to 30 s five times).
        client.deadline = Date.now();
        const onWait = (line: string) => assert.ok(!/[\x00-\x1f\x7f]/.test(line), `progress line ${JSON.stringify(line)}`);
        const out = await parsesOrRefusesAsync(() => resolveRef(client, 'demo', 'refs/heads/main', { mode: 'files', timeoutMs: 0, proxy, onWait }));
        if (!out.ok) return;
        const r = out.value;
        assert.equal(s, 200);
        assert.ok(isDigest(r.manifest.digest) && Number.isSafeInteger(r.manifest.size));
        if (proxy) assert.equal(r.downloads, null);
      }),
      fuzzParams(400),
    );
  } finally {
    await client.close();
  }
});

test('valid resolve answers come back as sent', async () => {
  const client = new ServerClient(url);
  try {
    await fc.assert(
      fc.asyncProperty(validAnswer, async (generated) => {
        const a = { ...JSON.parse(JSON.stringify(generated)), mode: generated.mode } as typeof generated; // plain objects
        answer = { status: 200, body: Buffer.from(JSON.stringify(a)), headers: {} };
        const r = await resolveRef(client, 'demo', 'refs/heads/main', { mode: 'files', timeoutMs: 1000 });
        assert.deepEqual({ ...r, downloads: r.downloads && { expiresAt: r.downloads.expiresAt, urls: Object.fromEntries([...r.downloads.urls].map(([k, v]) => [k, v.href])) } }, {
          ...a,
          signed: null, // the generated answers carry no signed query (its checks have tests of their own)
          inline: null, // nor inline bytes (test/fuzz/resolve-inline.test.ts)
          downloads: a.downloads && { expiresAt: a.downloads.expiresAt, urls: Object.fromEntries(Object.entries(a.downloads.urls).map(([k, v]) => [k, new URL(v).href])) },
        });
      }),
      fuzzParams(150),
    );
  } finally {
    await client.close();
  }
});

test('parseDownloads: any value is refused with a SnapError or gives only http(s) URLs without credentials, by digest', () => {
  const forgedUrl = fc.oneof(presigned, fc.constantFrom('file:///etc/passwd', 'http://user:pw@host/x', 'javascript:alert(1)', 'ftp://h/x', '//h/x', 'http://', 'x'.repeat(17000)), fc.string());
  const value = fc.oneof(
    fc.jsonValue(),
    fc.record({ expiresAt: fc.oneof(fc.integer(), fc.double(), fc.string()), urls: fc.dictionary(fc.oneof(digest, fc.string()), fc.oneof(forgedUrl, fc.jsonValue())) }),
  );
  fc.assert(
    fc.property(value, (v) => {
      const out = parsesOrRefuses(() => parseDownloads(v));
      if (!out.ok || out.value === null) return;
      for (const [k, u] of out.value.urls) {
        assert.ok(isDigest(k));
        assert.ok(u.protocol === 'http:' || u.protocol === 'https:');
        assert.equal(u.username + u.password, '');
      }
    }),
    fuzzParams(1500),
  );
});

test('pollDelayMs: any hint gives a whole number of ms within the bounds', () => {
  fc.assert(
    fc.property(fc.oneof(fc.jsonValue(), fc.double(), fc.constant(undefined)), fc.oneof(fc.string(), fc.array(fc.string()), fc.constant(undefined)), (hint, header) => {
      const ms = pollDelayMs(hint, header);
      assert.ok(Number.isInteger(ms) && ms >= POLL_MIN_MS && ms <= POLL_MAX_MS, String(ms));
    }),
    fuzzParams(1500),
  );
});

test('a JSON body that is not an object (null, a number, a list, a string) is a SnapError at every status (was a TypeError)', async () => {
  const client = new ServerClient(url);
  try {
    for (const s of [200, 202, 404, 500]) {
      for (const text of ['null', '7', '[]', '"x"', 'true']) {
        answer = { status: s, body: Buffer.from(text), headers: {} };
        const out = await parsesOrRefusesAsync(() => resolveRef(client, 'demo', 'refs/heads/main', { mode: 'files', timeoutMs: 0 }));
        assert.equal(out.ok, false, `${s} ${text} accepted`);
      }
    }
  } finally {
    await client.close();
  }
});

test("a server's error text with line breaks and terminal escapes becomes one printable line (was printed as sent)", async () => {
  const client = new ServerClient(url);
  const hostile = 'build broke\nsnapclone: clone done\x1b[2J\x1b]0;owned\x07\r';
  try {
    for (const [s, body] of [
      [202, { job: { id: 1 }, state: 'failed', error: hostile, errorCode: 'integrity' }],
      [500, { error: hostile, code: 'internal' }],
      [404, { error: hostile, code: 'not-found' }],
    ] as const) {
      answer = { status: s, body: Buffer.from(JSON.stringify(body)), headers: {} };
      const out = await parsesOrRefusesAsync(() => resolveRef(client, 'demo', 'refs/heads/main', { mode: 'files', timeoutMs: 1000 }));
      assert.equal(out.ok, false);
      if (!out.ok) assert.match(out.error.message, /build broke snapclone: clone done \[2J \]0;owned/);
    }
  } finally {
    await client.close();
  }
});

test('a job phase of any JSON type is shown as one printable line while waiting (an object without a usable toString was a TypeError)', async () => {
  const client = new ServerClient(url);
  try {
    for (const phase of [{ toString: 0 }, ['a', 'b'], 5, null, 'fetching\n\x1b[2Jowned']) {
      answer = { status: 202, body: Buffer.from(JSON.stringify({ job: { id: 1 }, phase, state: 'running' })), headers: {} };
      const lines: string[] = [];
      const out = await parsesOrRefusesAsync(() => resolveRef(client, 'demo', 'refs/heads/main', { mode: 'files', timeoutMs: 0, onWait: (l) => lines.push(l) }));
      assert.equal(out.ok, false); // the deadline has passed: a timeout
      assert.ok(lines.length > 0 && lines.every((l) => !/[\x00-\x1f\x7f]/.test(l)), JSON.stringify(lines));
    }
  } finally {
    await client.close();
  }
});

test('a downloads key or field name with DEL or C1 characters is quoted escaped in the error (was printed as sent)', () => {
  for (const v of [{ expiresAt: 0, urls: { '\x7f\x9b2J': 'http://h/x' } }, { expiresAt: 0, urls: {}, ['x\x9b2J']: 1 }]) {
    const out = parsesOrRefuses(() => parseDownloads(v));
    assert.equal(out.ok, false);
  }
});
