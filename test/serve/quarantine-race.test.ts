/**
 * A quarantine moves only the copy that was found damaged. A rebuild's put
 * can land a fresh good copy between the hash that found damage and the
 * rename that moves the file aside; the good copy must stay. The race is
 * played deterministically: a store whose quarantine first lets the put land.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalArtifactStore } from '../../src/storage/local/local-store.js';
import { ArtifactIntegrity } from '../../src/serve/integrity.js';
import { serveArtifact } from '../../src/serve/artifacts.js';
import { createServer } from 'node:http';

process.env.SNAPCLONE_LOG = 'error';

/** A real store whose quarantine runs `beforeQuarantine` first: the moment a concurrent put can land. */
class RacingStore extends LocalArtifactStore {
  beforeQuarantine: (() => Promise<void>) | null = null;
  override async quarantine(digest: string, reason: string, copy?: string): Promise<boolean> {
    const hook = this.beforeQuarantine;
    this.beforeQuarantine = null;
    await hook?.();
    return super.quarantine(digest, reason, copy);
  }
}

async function withStore(fn: (store: RacingStore) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'snapclone-qrace-'));
  try {
    await fn(new RacingStore(join(dir, 'store')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Cut the stored copy short (a size other than the artifact's, so a put replaces it). */
async function damage(store: LocalArtifactStore, digest: string, size: number): Promise<void> {
  const path = store.localPath(digest);
  await chmod(path, 0o644);
  await truncate(path, size);
  await chmod(path, 0o444);
}

async function assertGoodCopyStays(store: LocalArtifactStore, digest: string, bytes: Buffer): Promise<void> {
  assert.deepEqual(await readFile(store.localPath(digest)), bytes, 'the fresh good copy is still under its digest');
  assert.deepEqual(await store.listQuarantined(), []);
}

test('store: a quarantine of the copy a reader hashed leaves a copy put since then in place', async () => {
  await withStore(async (store) => {
    const bytes = Buffer.from('good bytes, long enough to cut short');
    const { digest } = await store.putBytes(bytes);
    await damage(store, digest, 4);
    const { stream, copy } = await store.openCopy(digest);
    const hash = createHash('sha256');
    for await (const chunk of stream) hash.update(chunk as Buffer);
    assert.notEqual(hash.digest('hex'), digest);
    await store.putBytes(bytes); // a rebuild: replaces the short copy with a good one
    assert.equal(await store.quarantine(digest, 'hash mismatch', copy), false, 'not the copy that was hashed');
    await assertGoodCopyStays(store, digest, bytes);
    // The copy that was hashed, still there, is quarantined.
    await damage(store, digest, 3);
    const again = await store.openCopy(digest);
    again.stream.resume();
    await new Promise((r) => again.stream.on('close', r));
    assert.equal(await store.quarantine(digest, 'hash mismatch', again.copy), true);
    assert.deepEqual((await store.listQuarantined()).map((q) => q.digest), [digest]);
  });
});

test('integrity: a put landing between the second hash and the rename is not moved away', async () => {
  await withStore(async (store) => {
    const integrity = new ArtifactIntegrity(store);
    const bytes = Buffer.alloc(100_000, 7);
    const { digest } = await store.putBytes(bytes);
    await damage(store, digest, 10);
    store.beforeQuarantine = async () => void (await store.putBytes(bytes));
    assert.notEqual(await integrity.check(digest), 'damaged');
    await assertGoodCopyStays(store, digest, bytes);
  });
});

test('serving: an empty stored copy is quarantined only if a second read finds it wrong too', async () => {
  await withStore(async (store) => {
    const integrity = new ArtifactIntegrity(store);
    const bytes = Buffer.from('served bytes');
    const { digest } = await store.putBytes(bytes);
    await damage(store, digest, 0);
    store.beforeQuarantine = async () => void (await store.putBytes(bytes));
    const server = createServer((req, res) => void serveArtifact({ store, integrity }, digest, req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as { port: number }).port;
      const res = await fetch(`http://127.0.0.1:${port}/`);
      await res.arrayBuffer();
      await assertGoodCopyStays(store, digest, bytes);
      const again = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(again.status, 200);
      assert.deepEqual(Buffer.from(await again.arrayBuffer()), bytes);
    } finally {
      server.close();
    }
  });
});
