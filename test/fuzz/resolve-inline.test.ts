/**
 * Properties of the client's checks of a resolve answer's `inline` field
 * (src/client/resolve.ts), over real HTTP: valid inline bytes come back as sent;
 * whatever else a server puts there (other bytes, other strings, any JSON, a
 * valid field with one character changed), resolveRef returns manifest bytes
 * whose size and SHA-256 are the answer's manifest's, or refuses with an
 * integrity or invalid SnapError.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { ServerClient } from '../../src/client/http.js';
import { resolveRef } from '../../src/client/resolve.js';
import { SnapError } from '../../src/util/errors.js';
import { sha256Hex } from '../../src/util/hash.js';
import { fuzzParams, parsesOrRefusesAsync } from './fuzz-support.js';

let body: Buffer = Buffer.from('{}');
let server: http.Server;
let url: string;
before(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const bytes = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a));

function answerFor(manifest: Buffer, inline: unknown): Buffer {
  return Buffer.from(
    JSON.stringify({ repo: 'demo', upstream: '/u', ref: 'refs/heads/main', commit: null, manifest: { digest: sha256Hex(manifest), size: manifest.length }, newer: null, downloads: null, inline }),
  );
}

/** One character of `s` replaced (or one inserted, or the string cut), as a garbling proxy might. */
const garbled = (s: string) =>
  fc.tuple(fc.nat(), fc.constantFrom('A', '/', '+', '=', '-', '_', ' ', '\n', '!', 'é', ''), fc.constantFrom('replace', 'insert', 'cut')).map(([i, c, how]) => {
    const at = s.length === 0 ? 0 : i % s.length;
    if (how === 'cut') return s.slice(0, at);
    return s.slice(0, at) + c + s.slice(how === 'replace' ? at + 1 : at);
  });

test('valid inline bytes come back as sent', async () => {
  const client = new ServerClient(url);
  try {
    await fc.assert(
      fc.asyncProperty(bytes, fc.option(bytes, { nil: undefined }), async (m, t) => {
        body = answerFor(m, t === undefined ? { manifest: m.toString('base64') } : { manifest: m.toString('base64'), table: t.toString('base64') });
        const r = await resolveRef(client, 'demo', 'refs/heads/main', { mode: 'full', timeoutMs: 1000 });
        assert.ok(r.inline);
        assert.deepEqual(r.inline.manifest, m);
        assert.deepEqual(r.inline.table, t ?? null);
      }),
      fuzzParams(150),
    );
  } finally {
    await client.close();
  }
});

test('any other inline field: the manifest bytes named by the answer, or an integrity or invalid error', async () => {
  const client = new ServerClient(url);
  try {
    const hostile = bytes.chain((m) => {
      const b64 = m.toString('base64');
      return fc.tuple(
        fc.constant(m),
        fc.oneof(
          bytes.map((other) => ({ manifest: other.toString('base64') })),
          garbled(b64).map((s) => ({ manifest: s })),
          bytes.chain((t) => garbled(t.toString('base64')).map((s) => ({ manifest: b64, table: s }))),
          fc.jsonValue(),
          fc.record({ manifest: fc.oneof(fc.string(), fc.jsonValue()), table: fc.oneof(fc.string(), fc.jsonValue()) }, { requiredKeys: [] }),
        ),
      );
    });
    await fc.assert(
      fc.asyncProperty(hostile, async ([m, inline]) => {
        body = answerFor(m, inline);
        const out = await parsesOrRefusesAsync(() => resolveRef(client, 'demo', 'refs/heads/main', { mode: 'full', timeoutMs: 1000 }));
        if (!out.ok) {
          assert.ok(out.error instanceof SnapError && (out.error.code === 'integrity' || out.error.code === 'invalid'), out.error.message);
          return;
        }
        const r = out.value.inline;
        if (r === null) return assert.ok(inline === null);
        assert.equal(sha256Hex(r.manifest), sha256Hex(m));
        assert.equal(r.manifest.length, m.length);
      }),
      fuzzParams(400),
    );
  } finally {
    await client.close();
  }
});
