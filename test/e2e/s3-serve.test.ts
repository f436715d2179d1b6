/**
 * The server on a real S3-compatible store (SeaweedFS): it builds into the bucket, resolve
 * hands out presigned URLs, and the CLI clones straight from the bucket (or through the
 * server with --proxy), identical to git clone either way.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { RunningServer } from '../../src/serve/server.js';
import { startServer } from '../../src/serve/server.js';
import { makeMediumRepo, type MediumRepo } from '../support/fixtures.js';
import { compareClones } from '../support/compare.js';
import { git, tmpDir } from '../support/git.js';
import { startSeaweed, WEED_MISSING, type Seaweed } from '../support/seaweed.js';
import { cliOk } from './harness.js';
import { rotInPlace } from '../storage/rot.js';
import { sha256Hex } from '../../src/util/hash.js';

let work: string;
let weed: Seaweed | null = null;
let server: RunningServer;
let medium: MediumRepo;
let bucket: string;
const saved: Record<string, string | undefined> = {};

before(async () => {
  weed = await startSeaweed();
  if (!weed) return;
  work = tmpDir('snapclone-s3-serve');
  medium = makeMediumRepo(work, { commits: 40 });
  bucket = await weed.createBucket();
  const env = { ...weed.env(), SNAPCLONE_S3_BUCKET: bucket, SNAPCLONE_S3_ENDPOINT: weed.endpoint, SNAPCLONE_S3_PREFIX: 'snap/' };
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  process.env.SNAPCLONE_LOG ??= 'warn';
  server = await startServer({ host: '127.0.0.1', port: 0, dataDir: join(work, 'data'), cacheBytes: 0 });
  await cliOk(server.url, ['add', medium.url, '--name', 'acme/medium']);
});

after(async () => {
  await server?.close();
  for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
  else process.env[k] = v;
  await weed?.stop();
});

test('artifacts live in the bucket; clones come straight from it and equal git clone', async (t) => {
  if (!weed) return t.skip(WEED_MISSING);
  const listed = await weed.client().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'snap/sha256/' }));
  assert.ok((listed.KeyCount ?? 0) > 3, 'the build put its artifacts in the bucket');
  for (const [gitFlags, snapFlags, mode] of [
    [[], [], 'editable'],
    [['--depth', '1'], ['--depth', '1'], 'editable'],
    [[], ['--mode', 'files'], 'files'],
  ] as const) {
    const tag = snapFlags.join('') || 'full';
    const g = join(work, `g-${tag}`);
    const s = join(work, `s-${tag}`);
    git(['clone', '--quiet', ...gitFlags, medium.url, g], { cwd: work });
    const r = await cliOk(server.url, ['clone', 'acme/medium', s, '--json', ...snapFlags]);
    const out = JSON.parse(r.stdout);
    assert.ok(out.objectStore.artifacts > 0, `${tag}: artifacts came from the bucket`);
    assert.equal(out.objectStore.fellBack, 0, `${tag}: none fell back to the server`);
    assert.deepEqual(compareClones(g, s, { mode }), [], `mode ${tag}`);
  }
});

test('--proxy streams every artifact through the server (from the bucket behind it)', async (t) => {
  if (!weed) return t.skip(WEED_MISSING);
  const g = join(work, 'g-proxy');
  const s = join(work, 's-proxy');
  git(['clone', '--quiet', medium.url, g], { cwd: work });
  const r = await cliOk(server.url, ['clone', 'acme/medium', s, '--json', '--proxy']);
  assert.equal(JSON.parse(r.stdout).objectStore.artifacts, 0);
  assert.deepEqual(compareClones(g, s, { mode: 'editable' }), []);
  // What went through the server is in its disk cache now, the big packs too (the hot cache is off).
  assert.ok(cached().includes(await largestArtifact()), 'the largest artifact was kept in the disk cache');
});

test('a damaged disk-cache copy is never served as good, and a client report clears it', async (t) => {
  if (!weed) return t.skip(WEED_MISSING);
  const digest = await largestArtifact();
  const url = `${server.url}/v1/artifacts/${digest}`;
  if (!cached().includes(digest)) assert.equal((await fetchWhole(url)).ok, true); // fills it
  const path = join(work, 'data', 's3-cache', digest);
  const size = statSync(path).size;
  const good = await fetchWhole(url);
  assert.equal(good.ok && sha256Hex(good.bytes), digest);

  // Rot a byte in place (same inode, size, mtime): a whole GET fails before it completes, never a good-looking 200.
  await rotInPlace(path, size - 10);
  for (let i = 0; i < 3; i++) {
    const got = await fetchWhole(url);
    assert.ok(!got.ok || sha256Hex(got.bytes) === digest, `GET ${i + 1}: no complete response with the wrong bytes`);
  }

  // Cached again, rotten again, this time where a range read lands: a client's report makes the server hash the copy it serves.
  assert.equal(sha256Hex((await fetchWhole(url)).bytes), digest);
  assert.ok(cached().includes(digest), 'kept again');
  await rotInPlace(path, 100);
  const report = await fetch(`${url}/report`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ problem: 'digest-mismatch' }) });
  assert.equal(report.status, 202);
  const want = (await fetchWhole(url)).bytes.subarray(0, 200);
  for (let deadline = Date.now() + 20_000; ; ) {
    const part = await fetch(url, { headers: { range: 'bytes=0-199' } });
    const bytes = Buffer.from(await part.arrayBuffer());
    if (part.status === 206 && bytes.equals(want)) break;
    assert.ok(Date.now() < deadline, 'the range read still serves the rotten cached copy after the report');
    await new Promise((r) => setTimeout(r, 200));
  }
  const g = join(work, 'g-rot');
  const s = join(work, 's-rot');
  git(['clone', '--quiet', medium.url, g], { cwd: work });
  await cliOk(server.url, ['clone', 'acme/medium', s, '--proxy']);
  assert.deepEqual(compareClones(g, s, { mode: 'editable' }), []);
});

/** Digests in the server's disk cache. */
function cached(): string[] {
  return readdirSync(join(work, 'data', 's3-cache')).filter((n) => n !== 'tmp');
}

/** The digest of the largest artifact in the bucket (a pack). */
async function largestArtifact(): Promise<string> {
  const listed = await weed!.client().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'snap/sha256/' }));
  const biggest = [...(listed.Contents ?? [])].sort((a, b) => (b.Size ?? 0) - (a.Size ?? 0))[0]!;
  return biggest.Key!.slice('snap/sha256/'.length);
}

/** GET the whole body; ok is false if the response failed or was cut short. */
async function fetchWhole(url: string): Promise<{ ok: boolean; bytes: Buffer }> {
  try {
    const res = await fetch(url);
    const bytes = Buffer.from(await res.arrayBuffer());
    return { ok: res.status === 200 && bytes.length === Number(res.headers.get('content-length')), bytes };
  } catch {
    return { ok: false, bytes: Buffer.alloc(0) };
  }
}
