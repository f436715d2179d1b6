/**
 * Resolve answers carrying the manifest and a small table inline (src/serve/resolve-inline.ts,
 * src/client/resolve.ts), real servers over real HTTP: the bytes are the stored artifacts';
 * the steady state needs no store read (the hot cache); without a cache they come from the
 * store, and damaged ones are left out rather than sent; a table over SNAPCLONE_INLINE_TABLE_MAX
 * is left out; a private repository's resolve inlines nothing before the caller is authorized,
 * and marks the bytes private first. A proxy that garbles the inline field makes resolveRef and
 * the real CLI fail with integrity (wrong bytes) or invalid (not base64, oversize).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ServerClient } from '../../src/client/http.js';
import { checkInlineArtifact, resolveRef } from '../../src/client/resolve.js';
import { parseManifest } from '../../src/clonepack/manifest.js';
import { SnapError } from '../../src/util/errors.js';
import { sha256Hex } from '../../src/util/hash.js';
import { addAndBuild, call, cleanup, makeUpstream, startTestServer, tempDir } from './helpers.js';
import { FaultyProxy } from '../client/faulty-proxy.js';
import { basic, startGitHttpServer, type GitHttpServer } from '../support/git-http-auth.js';
import { cli } from '../e2e/harness.js';

const ADMIN = 'inline-admin-token';
const SERVER_CRED = basic('snapclone-server', 'srv-Inl-31');
const ALICE = basic('alice', 'al1ce-Inl-62');
process.env.GIT_CONFIG_COUNT = '1';
process.env.GIT_CONFIG_KEY_0 = 'http.extraHeader';
process.env.GIT_CONFIG_VALUE_0 = `Authorization: ${SERVER_CRED}`;
process.env.SNAPCLONE_RATE_LIMIT = '0';

let work: string;
let upstream: string;
let forge: GitHttpServer;
let server: Awaited<ReturnType<typeof startTestServer>>;
const admin = { authorization: `Bearer ${ADMIN}` };
const resolvePath = (name: string, q = '') => `/v1/repos/${encodeURIComponent(name)}/resolve?ref=&mode=full${q}`;

async function artifact(base: string, digest: string, query = ''): Promise<Buffer> {
  const r = await fetch(`${base}/v1/artifacts/${digest}${query ? `?${query}` : ''}`);
  assert.equal(r.status, 200, `artifact ${digest}`);
  return Buffer.from(await r.arrayBuffer());
}

before(async () => {
  work = tempDir('snapclone-inline-');
  upstream = makeUpstream(work).dir;
  const root = join(work, 'forge');
  const r = spawnSync('git', ['clone', '-q', '--bare', upstream, join(root, 'team/secret.git')]);
  assert.equal(r.status, 0, r.stderr.toString());
  forge = await startGitHttpServer(root, { users: { 'snapclone-server': 'srv-Inl-31', alice: 'al1ce-Inl-62' } });
  server = await startTestServer({ adminToken: ADMIN, pollSeconds: 0 });
  await addAndBuild(server.url, upstream, 'pub', admin);
});

after(async () => {
  await server?.close();
  await forge?.close();
  if (work) cleanup(work);
});

test('inline=1: the answer carries the stored manifest and table bytes; without it, no inline field', async () => {
  const plain = await call(server.url, 'GET', resolvePath('pub'));
  assert.equal(plain.status, 200, plain.text);
  assert.equal('inline' in plain.json, false);
  const r = await call(server.url, 'GET', resolvePath('pub', '&inline=1'));
  assert.equal(r.status, 200, r.text);
  const { digest, size } = r.json.manifest;
  const manifest = Buffer.from(r.json.inline.manifest, 'base64');
  assert.deepEqual(manifest, await artifact(server.url, digest));
  assert.equal(manifest.length, size);
  const table = parseManifest(manifest).table;
  assert.deepEqual(Buffer.from(r.json.inline.table, 'base64'), await artifact(server.url, table.digest));

  // The client asks for it and hands it on checked.
  const resolved = await resolveRef(new ServerClient(server.url), 'pub', '', { mode: 'full', timeoutMs: 10_000 });
  assert.ok(resolved.inline);
  assert.deepEqual(resolved.inline.manifest, manifest);
  assert.ok(resolved.inline.table);
  assert.deepEqual(checkInlineArtifact(resolved.inline.table, table), resolved.inline.table);
  assert.throws(() => checkInlineArtifact(resolved.inline!.table!, { digest: sha256Hex('x'), size: table.size }), (e: unknown) => e instanceof SnapError && e.code === 'integrity');
  assert.throws(() => checkInlineArtifact(resolved.inline!.table!, { ...table, size: table.size + 1 }), (e: unknown) => e instanceof SnapError && e.code === 'integrity');
});

test('the steady state reads no store: inlined from memory after the stored files are gone', async () => {
  const first = await call(server.url, 'GET', resolvePath('pub', '&inline=1'));
  const manifest = Buffer.from(first.json.inline.manifest, 'base64');
  const table = parseManifest(manifest).table.digest;
  const file = (d: string) => join(server.dataDir, 'artifacts', d.slice(0, 2), d);
  const saved = new Map<string, Buffer>();
  for (const d of [first.json.manifest.digest as string, table]) {
    saved.set(d, await artifact(server.url, d));
    rmSync(file(d));
  }
  try {
    const again = await call(server.url, 'GET', resolvePath('pub', '&inline=1'));
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(again.json.inline, first.json.inline);
  } finally {
    for (const [d, b] of saved) writeFileSync(file(d), b);
  }
});

test('no hot cache: from the store, hashed; a damaged table or manifest is left out, the resolve still answers', async () => {
  const s = await startTestServer({ adminToken: ADMIN, pollSeconds: 0, cacheBytes: 0 });
  try {
    await addAndBuild(s.url, upstream, 'pub', admin);
    const ok = await call(s.url, 'GET', resolvePath('pub', '&inline=1'));
    assert.equal(ok.status, 200, ok.text);
    const manifest = Buffer.from(ok.json.inline.manifest, 'base64');
    const table = parseManifest(manifest).table;
    assert.equal(sha256Hex(Buffer.from(ok.json.inline.table, 'base64')), table.digest);
    const file = (d: string) => join(s.dataDir, 'artifacts', d.slice(0, 2), d);
    writeFileSync(file(table.digest), Buffer.alloc(table.size, 0x55));
    const noTable = await call(s.url, 'GET', resolvePath('pub', '&inline=1'));
    assert.equal(noTable.status, 200, noTable.text);
    assert.deepEqual(noTable.json.inline, { manifest: ok.json.inline.manifest });
    writeFileSync(file(ok.json.manifest.digest), Buffer.alloc(manifest.length, 0x20));
    const none = await call(s.url, 'GET', resolvePath('pub', '&inline=1'));
    assert.equal(none.status, 200, none.text);
    assert.equal(none.json.inline, null);
    const resolved = await resolveRef(new ServerClient(s.url), 'pub', '', { mode: 'full', timeoutMs: 10_000 });
    assert.equal(resolved.inline, null, 'nothing inline: the clone fetches (and the artifact endpoint finds the damage)');
  } finally {
    await s.close();
    cleanup(s.dataDir);
  }
});

test('SNAPCLONE_INLINE_TABLE_MAX below the table size: the manifest only', async () => {
  process.env.SNAPCLONE_INLINE_TABLE_MAX = '10';
  let s: Awaited<ReturnType<typeof startTestServer>> | null = null;
  try {
    s = await startTestServer({ adminToken: ADMIN, pollSeconds: 0 });
    await addAndBuild(s.url, upstream, 'pub', admin);
    const r = await call(s.url, 'GET', resolvePath('pub', '&inline=1'));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.json.inline), ['manifest']);
    const resolved = await resolveRef(new ServerClient(s.url), 'pub', '', { mode: 'shallow', timeoutMs: 10_000 });
    assert.ok(resolved.inline);
    assert.equal(resolved.inline.table, null);
    assert.equal(sha256Hex(resolved.inline.manifest), resolved.manifest.digest);
  } finally {
    delete process.env.SNAPCLONE_INLINE_TABLE_MAX;
    await s?.close();
    if (s) cleanup(s.dataDir);
  }
});

test('private repository: nothing inline before authorization; after it, the bytes are already marked private', async () => {
  const add = await call(server.url, 'POST', '/v1/repos', { url: `${forge.url}/team/secret.git`, name: 'secret' }, admin);
  assert.equal(add.status, 201, add.text);
  assert.equal(add.json.visibility, 'private');
  const up = { 'snapclone-upstream-authorization': ALICE };
  for (let i = 0; ; i++) {
    const j = await call(server.url, 'GET', `/v1/jobs/${add.json.job.id}`, undefined, admin);
    if (j.json.state === 'succeeded') break;
    assert.notEqual(j.json.state, 'failed', j.text);
    assert.ok(i < 600, 'build did not finish');
    await new Promise((r) => setTimeout(r, 50));
  }
  const refused = await call(server.url, 'GET', resolvePath('secret', '&inline=1'));
  assert.equal(refused.status, 401, refused.text);
  assert.equal(refused.json.inline, undefined);
  assert.doesNotMatch(refused.text, /manifest|[0-9a-f]{64}/);
  const wrong = await call(server.url, 'GET', resolvePath('secret', '&inline=1'), undefined, { 'snapclone-upstream-authorization': basic('alice', 'nope') });
  assert.equal(wrong.status, 403, wrong.text);
  assert.equal(wrong.json.inline, undefined);

  const r = await call(server.url, 'GET', resolvePath('secret', '&inline=1'), undefined, up);
  assert.equal(r.status, 200, r.text);
  const manifest = Buffer.from(r.json.inline.manifest, 'base64');
  const table = parseManifest(manifest).table.digest;
  for (const d of [r.json.manifest.digest as string, table]) {
    const unsigned = await call(server.url, 'GET', `/v1/artifacts/${d}`);
    assert.equal(unsigned.status, 403, `${d} is private: ${unsigned.text}`);
  }
  assert.deepEqual(manifest, await artifact(server.url, r.json.manifest.digest, r.json.signed.query));
  assert.deepEqual(Buffer.from(r.json.inline.table, 'base64'), await artifact(server.url, table, r.json.signed.query));
});

/** Every way a proxy may garble the inline field, and the error each must give. */
const GARBLED: Array<{ what: string; code: 'integrity' | 'invalid'; edit: (inline: { manifest: string; table?: string }, size: number) => unknown }> = [
  { what: 'other bytes of the same size', code: 'integrity', edit: (i, size) => ({ ...i, manifest: Buffer.alloc(size, 0x7b).toString('base64') }) },
  { what: 'one bit flipped', code: 'integrity', edit: (i) => ({ ...i, manifest: flipOne(i.manifest) }) },
  { what: 'truncated', code: 'integrity', edit: (i) => ({ ...i, manifest: Buffer.from(i.manifest, 'base64').subarray(0, 3).toString('base64') }) },
  { what: 'not base64', code: 'invalid', edit: (i) => ({ ...i, manifest: `!${i.manifest.slice(1)}` }) },
  { what: 'base64 cut short of a quantum', code: 'invalid', edit: (i) => ({ ...i, manifest: i.manifest.slice(0, -1) }) },
  { what: 'excess padding', code: 'invalid', edit: (i) => ({ ...i, manifest: `${i.manifest}====` }) },
  { what: 'base64 with whitespace', code: 'invalid', edit: (i) => ({ ...i, manifest: `${i.manifest.slice(0, 4)}\n${i.manifest.slice(4)}` }) },
  { what: 'oversize', code: 'invalid', edit: (i) => ({ ...i, manifest: i.manifest + Buffer.alloc(30_000).toString('base64') }) },
  { what: 'a number', code: 'invalid', edit: (i) => ({ ...i, manifest: 7 }) },
  { what: 'a stray field', code: 'invalid', edit: (i) => ({ ...i, extra: 1 }) },
  { what: 'an array', code: 'invalid', edit: () => [] },
  { what: 'a table that is not base64', code: 'invalid', edit: (i) => ({ ...i, table: '%%%%' }) },
  { what: 'an oversize table', code: 'invalid', edit: (i) => ({ ...i, table: 'AAAA'.repeat(6_000_000) }) },
];

function flipOne(b64: string): string {
  const b = Buffer.from(b64, 'base64');
  b[b.length >> 1]! ^= 1;
  return b.toString('base64');
}

test('a garbled inline field: resolveRef refuses it (integrity or invalid), and so does the real CLI', async () => {
  const proxy = await FaultyProxy.start(server.url);
  try {
    for (const g of GARBLED) {
      proxy.rewriteResolve = (j) => ({ ...j, inline: g.edit(j.inline as { manifest: string }, (j.manifest as { size: number }).size) });
      await assert.rejects(
        resolveRef(new ServerClient(proxy.url), 'pub', '', { mode: 'full', timeoutMs: 10_000 }),
        (e: unknown) => e instanceof SnapError && e.code === g.code,
        g.what,
      );
    }
    // The table is checked by the clone against the manifest; resolve takes well-formed base64 as it is.
    proxy.rewriteResolve = (j) => ({ ...j, inline: { ...(j.inline as object), table: Buffer.from('not the table').toString('base64') } });
    const r = await resolveRef(new ServerClient(proxy.url), 'pub', '', { mode: 'full', timeoutMs: 10_000 });
    const table = parseManifest(r.inline!.manifest).table;
    assert.throws(() => checkInlineArtifact(r.inline!.table!, table), (e: unknown) => e instanceof SnapError && e.code === 'integrity');

    for (const [g, exit] of [[GARBLED[0]!, 6], [GARBLED[3]!, 7]] as const) {
      proxy.rewriteResolve = (j) => ({ ...j, inline: g.edit(j.inline as { manifest: string }, (j.manifest as { size: number }).size) });
      const dir = join(work, `cli-${exit}`);
      const c = await cli(proxy.url, ['clone', 'pub', dir, '--quiet']);
      assert.equal(c.code, exit, `${g.what}: ${c.stderr}`);
      assert.match(c.stderr, /inline|malformed/);
    }
  } finally {
    await proxy.close();
  }
});
