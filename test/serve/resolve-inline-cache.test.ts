/**
 * The inline field cache (src/serve/resolve-inline.ts) under a herd: many
 * concurrent resolves of one manifest not cached yet share one build of its
 * field, and the cache counts its bytes once; it stays within its budget.
 * Real artifacts of a real build, read through a real store and hot cache.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { LocalArtifactStore } from '../../src/storage/local/local-store.js';
import { ArtifactIntegrity } from '../../src/serve/integrity.js';
import { HotArtifactCache } from '../../src/serve/hot-cache.js';
import { InlineArtifacts } from '../../src/serve/resolve-inline.js';
import { addAndBuild, call, cleanup, makeUpstream, startTestServer, tempDir } from './helpers.js';

test('concurrent misses of one manifest: one field, counted once', async () => {
  const work = tempDir();
  const server = await startTestServer();
  try {
    const up = makeUpstream(work);
    await addAndBuild(server.url, up.dir, 'herd');
    const digests: Array<{ digest: string; size: number }> = [];
    for (const mode of ['shallow', 'files', 'full']) {
      const r = await call(server.url, 'GET', `/v1/repos/herd/resolve?mode=${mode}`);
      assert.equal(r.status, 200, r.text);
      digests.push(r.json.manifest);
    }
    const store = new LocalArtifactStore(join(server.dataDir, 'artifacts'));
    const integrity = new ArtifactIntegrity(store);
    const inline = new InlineArtifacts({ store, integrity, hot: new HotArtifactCache(store, 64 << 20, { integrity }) }, 256 << 10);

    let expected = 0;
    for (const m of digests) {
      const fields = await Promise.all(Array.from({ length: 16 }, () => inline.field(m)));
      const f = fields[0];
      assert.ok(f, 'a field is built');
      for (const g of fields) assert.equal(g, f, 'the herd shares one field');
      expected += f.length;
      assert.equal(inline.cachedBytes, expected);
      // Hits and a repeated herd change nothing.
      await Promise.all(Array.from({ length: 4 }, () => inline.field(m)));
      assert.equal(inline.cachedBytes, expected);
    }
  } finally {
    await server.close();
    cleanup(work);
  }
});
