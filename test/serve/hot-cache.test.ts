/**
 * The two ways the server sends an artifact, from the in-memory cache and
 * streamed from disk, must answer byte for byte the same, ranges included.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { RunningServer } from '../../src/serve/server.js';
import { addAndBuild, cleanup, makeUpstream, startTestServer, tempDir } from './helpers.js';

let work: string;
let cached: RunningServer;
let streamed: RunningServer;
let digests: string[] = [];

before(async () => {
  work = tempDir();
  const up = makeUpstream(work);
  cached = await startTestServer({ cacheBytes: 64 << 20 });
  streamed = await startTestServer({ cacheBytes: 0 });
  for (const s of [cached, streamed]) await addAndBuild(s.url, up.dir, 'demo');
  const resolved = (await (await fetch(`${cached.url}/v1/repos/demo/resolve`)).json()) as { manifest: { digest: string } };
  // Manifests are composed at the first resolve that needs them (issue 7): resolve on both.
  const other = (await (await fetch(`${streamed.url}/v1/repos/demo/resolve`)).json()) as { manifest: { digest: string } };
  assert.equal(other.manifest.digest, resolved.manifest.digest, 'one upstream state, one manifest');
  const manifest = (await (await fetch(`${cached.url}/v1/artifacts/${resolved.manifest.digest}`)).json()) as {
    table: { digest: string };
    historyPacks: { pack: { digest: string } }[];
    archive: { chunks: { digest: string }[] };
  };
  digests = [resolved.manifest.digest, manifest.table.digest, manifest.historyPacks[0]!.pack.digest, ...manifest.archive.chunks.map((c) => c.digest)];
});

after(async () => {
  await cached?.close();
  await streamed?.close();
  cleanup(work);
});

async function get(base: string, digest: string, headers: Record<string, string> = {}) {
  const r = await fetch(`${base}/v1/artifacts/${digest}`, { headers });
  return { status: r.status, range: r.headers.get('content-range'), length: r.headers.get('content-length'), body: Buffer.from(await r.arrayBuffer()) };
}

test('cached and streamed answers are identical, whole and ranged, and hash to the digest', async () => {
  assert.ok(digests.length >= 4);
  for (const d of digests) {
    for (const range of [undefined, 'bytes=0-0', 'bytes=3-40', 'bytes=5-', 'bytes=-7']) {
      const headers: Record<string, string> = range ? { range } : {};
      // Twice from the cached server: the first may load, the second is a hit.
      const a1 = await get(cached.url, d, headers);
      const a2 = await get(cached.url, d, headers);
      const b = await get(streamed.url, d, headers);
      assert.deepEqual(a1, b, `${d.slice(0, 8)} ${range ?? 'whole'}`);
      assert.deepEqual(a2, b, `${d.slice(0, 8)} ${range ?? 'whole'} (hit)`);
      if (!range) assert.equal(createHash('sha256').update(b.body).digest('hex'), d);
      else assert.equal(b.status, 206);
    }
  }
});
