/**
 * Clients' reports cannot keep the server hashing its store: a digest not
 * stored is answered without a check or a log line, all reports share one
 * budget of bytes hashed, and an artifact a report found intact is left alone
 * for a while. Reads and the other checks are not limited by it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { LocalArtifactStore } from '../../src/storage/local/local-store.js';
import { ArtifactIntegrity } from '../../src/serve/integrity.js';
import { addAndBuild, call, makeUpstream, startTestServer, stderrLog, tempDir } from './helpers.js';

async function withStore(fn: (store: LocalArtifactStore) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'snapclone-reports-'));
  try {
    await fn(new LocalArtifactStore(join(dir, 'store')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('reports of digests the server does not store: 404 artifact-missing, no check, no log line', async () => {
  const work = tempDir();
  const up = makeUpstream(work);
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'demo');
    const mark = stderrLog.length;
    for (let i = 0; i < 20; i++) {
      const digest = createHash('sha256').update(`random ${i}`).digest('hex');
      const r = await call(s.url, 'POST', `/v1/artifacts/${digest}/report`, { problem: 'digest-mismatch' });
      assert.equal(r.status, 404, r.text);
      assert.equal(r.json.code, 'artifact-missing');
    }
    const logged = stderrLog.slice(mark).join('');
    assert.doesNotMatch(logged, /client reports|check of artifact|checked \(/);
    // A stored one is still checked.
    const manifest = (await call(s.url, 'GET', '/v1/repos/demo/resolve')).json.manifest.digest;
    const r = await call(s.url, 'POST', `/v1/artifacts/${manifest}/report`, { problem: 'truncated' });
    assert.deepEqual([r.status, r.json], [202, { status: 'checking' }]);
  } finally {
    await s.close();
  }
});

test('reported checks share one budget of bytes; other checks do not spend it', async () => {
  await withStore(async (store) => {
    // No refill: the burst is all there is. Each check costs at least 1 MiB, so two fit.
    const integrity = new ArtifactIntegrity(store, { reportBytesPerSecond: 0, reportBurstBytes: 2 * 2 ** 20 });
    const digests = [];
    for (let i = 0; i < 4; i++) digests.push((await store.putBytes(Buffer.from(`artifact ${i}`))).digest);
    const accepted = digests.map((d) => integrity.requestReportedCheck(d, 10, 'a client reported digest-mismatch'));
    assert.deepEqual(accepted, [true, true, false, false]);
    await integrity.idle();
    assert.equal(integrity.requestCheck(digests[2]!, 'first read was a byte range'), true, 'not limited by the report budget');
    assert.equal(await integrity.check(digests[3]!), 'intact', 'nor are direct checks (scrubber, first reads)');
    await integrity.idle();
  });
});

test('an artifact a report found intact is not checked again for a report for a while; other checks still run', async () => {
  await withStore(async (store) => {
    const integrity = new ArtifactIntegrity(store, { recheckIntervalMs: 0 });
    const { digest } = await store.putBytes(Buffer.from('fine bytes'));
    assert.equal(integrity.requestReportedCheck(digest, 10, 'a client reported truncated'), true);
    await integrity.idle();
    assert.equal(integrity.requestReportedCheck(digest, 10, 'a client reported truncated'), false);
    assert.equal(integrity.requestCheck(digest, 'first read was a byte range'), true);
    await integrity.idle();
  });
});
