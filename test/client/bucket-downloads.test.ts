/**
 * Clones that download straight from the object store (issue 8): the resolve
 * answer carries `downloads` (presigned URLs into a bucket of our own, a real
 * HTTP server); the clone takes every artifact from there, sends none of our
 * headers there, falls back to the server for a URL that is refused, expired or
 * unreachable, fails on wrong bytes from the bucket (exit 6, reported to the
 * server, nothing left), refuses a malformed `downloads` (exit 7), and with
 * --proxy asks the server for everything. Clonepacks are real (built by a real
 * server from a real upstream); every clone is compared with `git clone`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { manifestArtifacts, type Manifest } from '../../src/clonepack/manifest.js';
import { compareClones } from '../support/compare.js';
import { gitTry, tmpDir } from '../support/git.js';
import { cli, startTestServer, type CliResult } from '../e2e/harness.js';
import { asMode, harvest, makeFreshUpstream, type Upstream } from './fresh-server.js';
import { Bucket, PresigningServer } from './bucket.js';

const TOKEN = 'admin-token-that-must-stay-with-the-server';

let work: string;
let up: Upstream;
let main: Manifest; // the real server's full manifest of the default branch
let server: PresigningServer;
let bucket: Bucket;

before(async () => {
  work = tmpDir('snapclone-bucket');
  up = makeFreshUpstream(join(work, 'upstream'));
  const real = await startTestServer(work);
  const artifacts = new Map<string, Buffer>();
  try {
    const add = await fetch(`${real.url}/v1/repos`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: up.url, name: 'demo' }) });
    assert.equal(add.status, 201, await add.text());
    main = await harvest(real.url, 'demo', '', artifacts);
  } finally {
    await real.close();
  }
  server = await PresigningServer.start();
  bucket = await Bucket.start();
  for (const [d, b] of artifacts) {
    server.artifacts.set(d, b);
    bucket.objects.set(d, b);
  }
});

after(async () => {
  await server?.close();
  await bucket?.close();
});

let n = 0;

function target(): { parent: string; dir: string } {
  const parent = join(work, `p${++n}`);
  mkdirSync(parent);
  return { parent, dir: join(parent, 'clone') };
}

function gitClone(flags: string[]): string {
  const dir = join(work, `git-${++n}`);
  const r = gitTry(['clone', '--quiet', ...flags, up.url, dir], { cwd: work });
  assert.equal(r.status, 0, r.stderr.toString());
  return dir;
}

function clone(args: string[]): Promise<CliResult> {
  return cli(server.url, ['clone', 'demo', ...args], { env: { SNAPCLONE_TOKEN: TOKEN } });
}

function forget(): void {
  server.requests.length = 0;
  server.reports.length = 0;
  bucket.requests.length = 0;
  bucket.refuse.clear();
  bucket.cut.clear();
}

/**
 * Resolve answers with manifest `m` (stored on the server and in the bucket)
 * and `downloads` from `make` (default: a URL in the bucket for the manifest
 * and every artifact it names, valid for 5 minutes).
 */
function serve(m: Manifest, make?: (urls: Record<string, string>) => unknown): { digest: string; pulled: string[] } {
  const ref = server.publish(m);
  bucket.objects.set(ref.digest, server.artifacts.get(ref.digest)!);
  const digests = [ref.digest, ...manifestArtifacts(m).map((a) => a.digest)];
  const urls = Object.fromEntries(digests.map((d) => [d, bucket.urlOf(d)]));
  const downloads = make ? make(urls) : { expiresAt: Date.now() + 300_000, urls };
  server.answer = () => ({ repo: 'demo', upstream: up.url, ref: m.ref, commit: m.commit, mode: m.mode ?? 'full', manifest: ref, builtAt: 1, newer: null, downloads });
  // What a full clone downloads: the manifest, the table, the history packs and the archive (not the HEAD packs).
  const pulled = [ref.digest, m.table.digest, ...m.historyPacks.flatMap((p) => [p.pack.digest, p.idx.digest]), ...m.archive.chunks.map((c) => c.digest)];
  return { digest: ref.digest, pulled };
}

function assertNothingLeft(parent: string): void {
  assert.deepEqual(readdirSync(parent), [], 'a failed clone left something behind');
}

test('every artifact comes from the bucket, none through the server, and each clone mode is what git clone makes', async () => {
  const cases: { snap: string[]; git: string[]; manifest: Manifest; layout: 'editable' | 'files' }[] = [
    { snap: [], git: [], manifest: main, layout: 'editable' },
    { snap: ['--depth', '1'], git: ['--depth', '1'], manifest: asMode(main, 'shallow'), layout: 'editable' },
    { snap: ['--mode', 'files'], git: [], manifest: asMode(main, 'files'), layout: 'files' },
  ];
  for (const c of cases) {
    forget();
    const { digest } = serve(c.manifest);
    const t = target();
    const r = await clone([t.dir, '--quiet', '--json', ...c.snap]);
    assert.equal(r.code, 0, r.stderr);
    const what = `snapclone clone ${c.snap.join(' ')}`;
    assert.equal(server.artifactGets(), 0, `${what}: the server's artifact route was used`);
    assert.equal(bucket.hits(digest), 1, `${what}: the manifest came from the bucket`);
    assert.ok(bucket.requests.length >= 3, `${what}: the bucket served the artifacts (${bucket.requests.length} requests)`);
    assert.deepEqual(JSON.parse(r.stdout).objectStore, { artifacts: bucket.requests.length, fellBack: 0 }, what);
    assert.deepEqual(compareClones(gitClone(c.git), t.dir, { mode: c.layout }), [], what);
  }
});

test('no Authorization (nor any header of ours) reaches the bucket, while the server gets the token', async () => {
  forget();
  serve(main);
  const t = target();
  const r = await clone([t.dir, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const resolve = server.requests.find((q) => q.path.endsWith('/resolve'))!;
  assert.equal(resolve.headers.authorization, `Bearer ${TOKEN}`, 'the token is in play: the server receives it');
  assert.ok(bucket.requests.length > 0);
  for (const q of bucket.requests) {
    assert.equal(q.headers.authorization, undefined, `Authorization sent to the bucket for ${q.path}`);
    const ours = Object.keys(q.headers).filter((h) => !['host', 'connection'].includes(h));
    assert.deepEqual(ours, [], `headers sent to the bucket for ${q.path}`);
    assert.ok(!JSON.stringify(q.headers).includes(TOKEN), 'the token reached the bucket');
  }
});

test('a URL the bucket refuses (403, 404, 410) falls back to the server for that artifact only; the clone is git clone', async () => {
  forget();
  const { pulled: digests } = serve(main);
  const [, table, ...rest] = digests;
  const refused = new Map<string, number>([
    [table!, 403],
    [rest[0]!, 404],
    [rest[rest.length - 1]!, 410],
  ]);
  for (const [d, status] of refused) bucket.refuse.set(d, status);
  const t = target();
  const r = await clone([t.dir, '--quiet', '--json']);
  assert.equal(r.code, 0, r.stderr);
  for (const d of digests) {
    assert.equal(bucket.hits(d), 1, `${d.slice(0, 12)} asked of the bucket once`);
    assert.equal(server.hits(d), refused.has(d) ? 1 : 0, `${d.slice(0, 12)} through the server`);
  }
  assert.deepEqual(JSON.parse(r.stdout).objectStore, { artifacts: digests.length - refused.size, fellBack: refused.size });
  assert.deepEqual(compareClones(gitClone([]), t.dir, { mode: 'editable' }), []);
  assert.deepEqual(server.reports, [], 'a refused URL is not a bad artifact');
});

test('a download from the bucket that breaks off midway is fetched again from the server', async () => {
  forget();
  const { pulled } = serve(main);
  const cut = pulled.filter((d) => bucket.objects.get(d)!.length > 1);
  for (const d of cut) bucket.cut.add(d);
  const t = target();
  const r = await clone([t.dir, '--quiet', '--json']);
  assert.equal(r.code, 0, r.stderr);
  for (const d of cut) assert.equal(server.hits(d), 1, `${d.slice(0, 12)} through the server`);
  assert.deepEqual(JSON.parse(r.stdout).objectStore, { artifacts: pulled.length - cut.length, fellBack: cut.length });
  assert.deepEqual(compareClones(gitClone([]), t.dir, { mode: 'editable' }), []);
  assert.deepEqual(server.reports, [], 'a broken connection is not a bad artifact');
});

test('URLs past expiresAt are not used: everything comes from the server', async () => {
  forget();
  const { pulled: digests } = serve(main, (urls) => ({ expiresAt: Date.now() - 1000, urls }));
  const t = target();
  const r = await clone([t.dir, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(bucket.requests.length, 0, 'an expired URL was requested');
  for (const d of digests) assert.equal(server.hits(d), 1, `${d.slice(0, 12)} through the server`);
  assert.deepEqual(compareClones(gitClone([]), t.dir, { mode: 'editable' }), []);
});

test('a bucket that cannot be reached: every artifact falls back to the server, and the clone is git clone', async () => {
  forget();
  // A port that was free a moment ago: connections to it are refused.
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const { pulled: digests } = serve(main, (urls) => ({
    expiresAt: Date.now() + 300_000,
    urls: Object.fromEntries(Object.entries(urls).map(([d, u]) => [d, u.replace(bucket.url, `http://127.0.0.1:${port}`)])),
  }));
  const t = target();
  const r = await clone([t.dir, '--quiet', '--json']);
  assert.equal(r.code, 0, r.stderr);
  for (const d of digests) assert.equal(server.hits(d), 1, `${d.slice(0, 12)} through the server`);
  assert.equal(JSON.parse(r.stdout).objectStore.artifacts, 0);
  assert.ok(JSON.parse(r.stdout).objectStore.fellBack >= 1);
  assert.deepEqual(compareClones(gitClone([]), t.dir, { mode: 'editable' }), []);
});

test('a corrupted object in the bucket fails the clone with exit 6, is reported to the server, is not fetched again, and leaves nothing', async () => {
  const { pulled: digests } = serve(main);
  // Every artifact in turn, the manifest first: a flipped byte (same size) and a short copy.
  for (const d of digests) {
    for (const damage of ['flip', 'short'] as const) {
      forget();
      const good = bucket.objects.get(d)!;
      const bad = damage === 'flip' ? Buffer.from(good) : good.subarray(0, good.length - 1);
      if (damage === 'flip') bad[bad.length >> 1] ^= 0x20;
      bucket.objects.set(d, bad);
      try {
        const t = target();
        const r = await clone([t.dir, '--quiet']);
        const what = `${damage} ${d.slice(0, 12)}`;
        assert.equal(r.code, 6, `${what}: ${r.stderr}`);
        assert.match(r.stderr, /^snapclone: the object store's copy \(at http:\/\/127\.0\.0\.1:\d+\) of artifact [0-9a-f]{12} (does not match its SHA-256 digest|is truncated: \d+ of \d+ bytes)\n$/, what);
        assert.ok(!r.stderr.includes('X-Amz-Signature'), 'the presigned URL (a credential) was printed');
        assert.equal(server.hits(d), 0, `${what}: wrong bytes are not fetched again from the server`);
        assert.deepEqual(server.reports, [{ digest: d, body: { problem: damage === 'flip' ? 'digest-mismatch' : 'truncated' } }], what);
        assertNothingLeft(t.parent);
      } finally {
        bucket.objects.set(d, good);
      }
    }
  }
});

test('--proxy sends proxy=1, never touches the bucket even when the answer has URLs, and the clone is git clone', async () => {
  forget();
  const { pulled: digests } = serve(main);
  const t = target();
  const r = await clone([t.dir, '--quiet', '--proxy']);
  assert.equal(r.code, 0, r.stderr);
  const resolves = server.requests.filter((q) => q.path.endsWith('/resolve'));
  assert.deepEqual(resolves.map((q) => q.query.get('proxy')), ['1']);
  assert.equal(bucket.requests.length, 0, '--proxy used the bucket');
  for (const d of digests) assert.equal(server.hits(d), 1, `${d.slice(0, 12)} through the server`);
  assert.deepEqual(compareClones(gitClone([]), t.dir, { mode: 'editable' }), []);

  // Without --proxy, no proxy parameter.
  forget();
  const u = target();
  assert.equal((await clone([u.dir, '--quiet'])).code, 0);
  assert.deepEqual(server.requests.filter((q) => q.path.endsWith('/resolve')).map((q) => q.query.get('proxy')), [null]);
});

test('a malformed downloads field is invalid data (exit 7) with a clear message, fetches nothing from what it names, and leaves nothing', async () => {
  const other = 'e'.repeat(64);
  const cases: { name: string; make: (urls: Record<string, string>) => unknown; message: RegExp }[] = [
    { name: 'not an object', make: () => 'http://bucket/x', message: /downloads: not an object/ },
    { name: 'an unknown field', make: (urls) => ({ expiresAt: Date.now() + 60_000, urls, extra: 1 }), message: /downloads: unknown field "extra"/ },
    { name: 'expiresAt a string', make: (urls) => ({ expiresAt: 'soon', urls }), message: /downloads: expiresAt is not a time/ },
    { name: 'urls an array', make: (urls) => ({ expiresAt: Date.now() + 60_000, urls: Object.values(urls) }), message: /downloads: urls is not an object/ },
    { name: 'a key that is not a digest', make: (urls) => ({ expiresAt: Date.now() + 60_000, urls: { ...urls, '../../etc/passwd': bucket.urlOf(other) } }), message: /downloads: key "\.\.\/\.\.\/etc\/passwd" is not a SHA-256 digest/ },
    { name: 'an upper-case digest', make: (urls) => ({ expiresAt: Date.now() + 60_000, urls: { ...urls, [other.toUpperCase()]: bucket.urlOf(other) } }), message: /is not a SHA-256 digest/ },
    { name: 'a file: URL', make: (urls) => ({ expiresAt: Date.now() + 60_000, urls: mapUrls(urls, () => 'file:///etc/passwd') }), message: /downloads: the URL of [0-9a-f]{12} is file:, not http or https/ },
    { name: 'a relative URL', make: (urls) => ({ expiresAt: Date.now() + 60_000, urls: mapUrls(urls, () => '/v1/artifacts/x') }), message: /is not an absolute URL/ },
    { name: 'a URL with a password', make: (urls) => ({ expiresAt: Date.now() + 60_000, urls: mapUrls(urls, (u) => u.replace('http://', 'http://me:secret@')) }), message: /holds a user name or password/ },
    { name: 'a URL that is not a string', make: (urls) => ({ expiresAt: Date.now() + 60_000, urls: mapUrls(urls, () => 42) }), message: /is not a string/ },
    { name: 'a URL too long', make: (urls) => ({ expiresAt: Date.now() + 60_000, urls: mapUrls(urls, (u) => `${u}&pad=${'x'.repeat(20_000)}`) }), message: /longer than 16384 characters/ },
    { name: 'a digest the manifest does not name', make: (urls) => ({ expiresAt: Date.now() + 60_000, urls: { ...urls, [other]: bucket.urlOf(other) } }), message: /downloads: a URL for e{12}, which the manifest does not name/ },
  ];
  for (const c of cases) {
    forget();
    const { digest } = serve(main, c.make);
    const t = target();
    const r = await clone([t.dir, '--quiet']);
    assert.equal(r.code, 7, `${c.name}: ${r.stderr}`);
    assert.match(r.stderr, /^snapclone: server sent a malformed resolve answer \(downloads: .*\)\n$/, c.name);
    assert.match(r.stderr, c.message, c.name);
    assert.ok(!r.stderr.includes('secret'), `${c.name}: a password was printed`);
    // Only the manifest may have been fetched before the check against it.
    const fetched = [...bucket.requests.map((q) => q.path), ...server.requests.filter((q) => q.path.startsWith('/v1/artifacts/')).map((q) => q.path)];
    assert.ok(fetched.every((p) => p.endsWith(digest)), `${c.name}: fetched ${fetched.join(', ')}`);
    assertNothingLeft(t.parent);
  }
});

function mapUrls(urls: Record<string, string>, f: (u: string) => unknown): Record<string, unknown> {
  return Object.fromEntries(Object.entries(urls).map(([d, u]) => [d, f(u)]));
}
