/**
 * GET /readyz against real engines: 200 while the database and the artifact store answer, 503
 * naming the one that does not (and nothing more), 200 again once it is back; each change of
 * state logged once; a probe that hangs is cut at its timeout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, renameSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { call, startTestServer, stderrLog, tempDir } from './helpers.js';
import { logLines } from './log-lines.js';
import { apiHandler } from '../../src/serve/api.js';
import { withRequestLog } from '../../src/serve/server.js';
import { SyncService } from '../../src/serve/sync.js';
import { ArtifactIntegrity } from '../../src/serve/integrity.js';
import { ReadinessCheck } from '../../src/serve/readiness.js';
import { SqliteMetadataStore } from '../../src/metadata/sqlite/sqlite-store.js';
import { LocalArtifactStore } from '../../src/storage/local/local-store.js';
import { LocalJobQueue } from '../../src/queue/local/local-queue.js';
import { openArtifactStore } from '../../src/storage/config.js';
import { startSeaweed, WEED_MISSING } from '../support/seaweed.js';

const READY = { ready: true, failed: [], checks: { database: 'ok', 'artifact store': 'ok' } };

test('the artifact store moved away (or unreadable): 503 naming it, and 200 again once it is back', async () => {
  const s = await startTestServer();
  const artifacts = join(s.dataDir, 'artifacts');
  try {
    let r = await call(s.url, 'GET', '/readyz');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, READY);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const mark = stderrLog.length;
    renameSync(artifacts, `${artifacts}.away`);
    for (let i = 0; i < 2; i++) {
      r = await call(s.url, 'GET', '/readyz');
      assert.equal(r.status, 503, r.text);
      assert.deepEqual(r.json, { ready: false, failed: ['artifact store'], checks: { database: 'ok', 'artifact store': 'failed' } }, 'which engine, not why');
    }
    assert.equal((await fetch(`${s.url}/readyz`, { method: 'HEAD' })).status, 503);
    renameSync(`${artifacts}.away`, artifacts);
    r = await call(s.url, 'GET', '/readyz');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, READY);
    // The reason goes to the log, once per change of state.
    const lines = logLines(stderrLog.slice(mark)).filter((l) => l.msg.startsWith('readyz:'));
    assert.deepEqual(
      lines.map((l) => [l.level, l.msg.replace(/(failed): .*/, '$1: ...')]),
      [
        ['warn', 'readyz: the artifact store check failed: ...'],
        ['info', 'readyz: the artifact store answers again'],
      ],
    );
    assert.match(lines[0]!.msg, /ENOENT/);
    if (process.getuid?.() !== 0) {
      // Root reads a mode-0 directory anyway, so this part only means something for other users.
      chmodSync(artifacts, 0o000);
      try {
        assert.equal((await call(s.url, 'GET', '/readyz')).status, 503);
      } finally {
        chmodSync(artifacts, 0o755);
      }
      assert.equal((await call(s.url, 'GET', '/readyz')).status, 200);
    }
  } finally {
    await s.close();
  }
});

test('a closed database: 503 naming the database (both engines named when both fail)', async () => {
  // The API over real engines, wired as server.ts wires them, with the database in our hands.
  const dir = tempDir();
  const meta = new SqliteMetadataStore(join(dir, 'snapclone.db'));
  const store = new LocalArtifactStore(join(dir, 'artifacts'));
  const sync = new SyncService(dir, store, meta);
  const queue = new LocalJobQueue(meta, (job, report) => sync.run(job, report));
  const handler = apiHandler({ store, meta, queue, sync, adminTokenHash: null, integrity: new ArtifactIntegrity(store) });
  const http: Server = createHttpServer(withRequestLog(handler));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  try {
    assert.deepEqual((await call(base, 'GET', '/readyz')).json, READY);
    await queue.close();
    await meta.close();
    let r = await call(base, 'GET', '/readyz');
    assert.equal(r.status, 503, r.text);
    assert.deepEqual(r.json, { ready: false, failed: ['database'], checks: { database: 'failed', 'artifact store': 'ok' } });
    assert.equal((await call(base, 'GET', '/healthz')).status, 200, 'liveness is another question: the process is alive');
    renameSync(join(dir, 'artifacts'), join(dir, 'artifacts.away'));
    r = await call(base, 'GET', '/readyz');
    assert.equal(r.status, 503);
    assert.deepEqual(r.json.failed, ['database', 'artifact store']);
  } finally {
    await new Promise((r) => http.close(r));
  }
});

test('an engine that does not answer is cut at the timeout, and overlapping checks share one probe', async () => {
  // A real server that accepts connections and never answers: a database on a hung host.
  const sockets: Socket[] = [];
  const silent = createNetServer((sock) => sockets.push(sock));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (silent.address() as AddressInfo).port;
  const dir = tempDir();
  const store = new LocalArtifactStore(join(dir, 'artifacts'));
  const hung = { ping: () => fetch(`http://127.0.0.1:${port}/`).then(() => undefined), getJob: async () => null };
  const check = new ReadinessCheck({ meta: hung, store }, { timeoutMs: 300 });
  try {
    const [a, b] = await Promise.all([check.check(), check.check()]);
    assert.deepEqual(a, { ready: false, failed: ['database'], checks: { database: 'timed out', 'artifact store': 'ok' } });
    assert.equal(b, a, 'one probe for both');
    assert.equal(sockets.length, 1, 'one connection to the hung engine');
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  }
});

test('the S3 artifact store: a missing bucket and a stopped store are 503 naming it', async (t) => {
  const weed = await startSeaweed();
  if (!weed) return t.skip(WEED_MISSING);
  const dir = tempDir();
  const meta = new SqliteMetadataStore(join(dir, 'snapclone.db'));
  // Credentials reach the SDK through the process environment, as in a deployment.
  const saved = { ...process.env };
  Object.assign(process.env, weed.env());
  const env = { ...process.env };
  const good = openArtifactStore({ ...env, SNAPCLONE_S3_BUCKET: await weed.createBucket() }, join(dir, 'good'));
  const typo = openArtifactStore({ ...env, SNAPCLONE_S3_BUCKET: 'no-such-bucket-xyz' }, join(dir, 'typo'));
  const failedStore = { ready: false, failed: ['artifact store'], checks: { database: 'ok', 'artifact store': 'failed' } };
  try {
    assert.deepEqual(await new ReadinessCheck({ meta, store: good }).check(), READY);
    assert.deepEqual(await new ReadinessCheck({ meta, store: typo }).check(), failedStore, 'a misnamed bucket is not ready');
    await weed.stop();
    const down = await new ReadinessCheck({ meta, store: good }).check();
    assert.equal(down.ready, false);
    assert.deepEqual(down.failed, ['artifact store']);
  } finally {
    good.close?.();
    typo.close?.();
    await meta.close();
    await weed.stop();
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
});
