/**
 * A hostile server's archive chunk or file table made of a frame declaring the
 * expected size followed by a second frame that inflates to 256 MiB (a
 * decompression bomb of ~8 KiB, well inside the manifest's size bound): the
 * clone must fail with integrity before decompressing, not after the client has
 * allocated and filled 256 MiB. Its own file, so the process's peak RSS starts low.
 * (Peak RSS is a high-water mark: if both paths regressed, the first test fails; if
 * only the table path did, the first leaves the peak low and the second fails.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { compress } from 'zstd-napi';
import { clone } from '../../src/client/clone.js';
import { SnapError } from '../../src/util/errors.js';
import { cloneDirs, FakeServer, makeClonepack, publish, sha256 } from '../client/fake-server.js';
import { rleBomb } from './zstd-frames.js';

const BOMB = 256 * 2 ** 20;
let server: FakeServer;
before(async () => {
  server = await FakeServer.start();
});
after(async () => {
  await server.close();
});

/** Peak RSS growth (bytes) while `fn` runs: maxRSS is the process's high-water mark, in KiB. */
async function peakGrowth(fn: () => Promise<void>): Promise<number> {
  const before = process.resourceUsage().maxRSS;
  await fn();
  return (process.resourceUsage().maxRSS - before) * 1024;
}

async function cloneFails(): Promise<SnapError> {
  const dirs = cloneDirs();
  mkdirSync(dirs.parent, { recursive: true });
  try {
    await clone({ server: server.url, name: 'demo', dir: dirs.target, mode: 'files', waitTimeoutMs: 10_000 });
  } catch (err) {
    assert.ok(err instanceof SnapError, `not a SnapError: ${String(err)}`);
    return err;
  } finally {
    dirs.cleanup();
  }
  assert.fail('the clone succeeded');
}

test('an archive chunk of a right-sized frame plus a 256 MiB bomb frame is refused before it is decompressed', async () => {
  const content = Buffer.from('0123456789');
  const pack = makeClonepack([{ path: 'f', content }]);
  const z = Buffer.concat([compress(content), rleBomb(BOMB)]);
  pack.artifacts.delete(pack.chunkDigests[0]!);
  pack.artifacts.set(sha256(z), z);
  pack.manifest.archive.chunks = [{ digest: sha256(z), size: z.length, rawSize: content.length }];
  publish(server, pack);
  let error: SnapError | null = null;
  const grew = await peakGrowth(async () => {
    error = await cloneFails();
  });
  assert.equal(error!.code, 'integrity', error!.message);
  assert.ok(grew < BOMB / 2, `peak RSS grew by ${Math.round(grew / 2 ** 20)} MiB for a ${z.length}-byte chunk`);
});

test('a file table of a right-sized frame plus a 256 MiB bomb frame is refused before it is decompressed', async () => {
  const pack = makeClonepack([{ path: 'f', content: 'x' }]);
  const table = pack.artifacts.get(pack.tableDigest)!;
  const z = Buffer.concat([table, rleBomb(BOMB)]);
  pack.artifacts.delete(pack.tableDigest);
  pack.artifacts.set(sha256(z), z);
  pack.manifest.table = { ...pack.manifest.table, digest: sha256(z), size: z.length };
  publish(server, pack);
  let error: SnapError | null = null;
  const grew = await peakGrowth(async () => {
    error = await cloneFails();
  });
  assert.equal(error!.code, 'integrity', error!.message);
  assert.ok(grew < BOMB / 2, `peak RSS grew by ${Math.round(grew / 2 ** 20)} MiB for a ${z.length}-byte table`);
});
