/**
 * ArtifactIntegrity against a real local store: a read that saw wrong bytes
 * quarantines only a copy that a second read finds wrong too, so a file
 * replaced or restored during a read is never moved away; verified digests
 * are remembered and forgotten on quarantine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalArtifactStore } from '../../src/storage/local/local-store.js';
import { ArtifactIntegrity } from '../../src/serve/integrity.js';
import { HotArtifactCache } from '../../src/serve/hot-cache.js';
import { SnapError } from '../../src/util/errors.js';

process.env.SNAPCLONE_LOG = 'error'; // quarantines log at error level; keep the rest quiet

async function withStore(fn: (store: LocalArtifactStore) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'snapclone-integrity-'));
  try {
    await fn(new LocalArtifactStore(join(dir, 'store')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function overwrite(store: LocalArtifactStore, digest: string, bytes: Buffer): Promise<void> {
  const path = store.localPath(digest);
  await chmod(path, 0o644);
  await writeFile(path, bytes);
  await chmod(path, 0o444);
}

test('a mismatch is confirmed by a second read before anything is quarantined', async () => {
  await withStore(async (store) => {
    const integrity = new ArtifactIntegrity(store);
    const { digest } = await store.putBytes(Buffer.from('good bytes'));
    // A first read saw other bytes (the file was being restored meanwhile): the copy now is good.
    assert.equal(await integrity.confirmDamage(digest, 'f'.repeat(64), 10, 'in a test'), 'intact');
    assert.equal(integrity.isVerified(digest), true);
    assert.deepEqual(await store.listQuarantined(), []);

    await overwrite(store, digest, Buffer.from('bad  bytes'));
    const dropped: string[] = [];
    integrity.onQuarantine((d) => dropped.push(d));
    assert.equal(await integrity.confirmDamage(digest, 'f'.repeat(64), 10, 'in a test'), 'damaged');
    assert.equal(integrity.isVerified(digest), false);
    assert.deepEqual(dropped, [digest]);
    assert.deepEqual((await store.listQuarantined()).map((q) => q.digest), [digest]);
    assert.equal(await integrity.confirmDamage(digest, 'f'.repeat(64), 10, 'in a test'), 'absent');
  });
});

test('check hashes the stored copy; concurrent checks of one artifact share one read', async () => {
  await withStore(async (store) => {
    const integrity = new ArtifactIntegrity(store);
    const good = await store.putBytes(Buffer.alloc(3 << 20, 1));
    const bad = await store.putBytes(Buffer.alloc(3 << 20, 2));
    await overwrite(store, bad.digest, Buffer.alloc(3 << 20, 3));
    const [a, b] = [integrity.check(good.digest), integrity.check(good.digest)];
    assert.equal(a, b);
    assert.deepEqual(await Promise.all([a, integrity.check(bad.digest), integrity.check('0'.repeat(64))]), ['intact', 'damaged', 'absent']);
    assert.deepEqual((await store.listQuarantined()).map((q) => q.digest), [bad.digest]);
  });
});

test('the hot cache drops its copy when the artifact is quarantined, and refuses to cache damaged bytes', async () => {
  await withStore(async (store) => {
    const integrity = new ArtifactIntegrity(store);
    const hot = new HotArtifactCache(store, 1 << 20, { integrity });
    const bytes = Buffer.from('cached artifact');
    const { digest, size } = await store.putBytes(bytes);
    assert.deepEqual(await hot.get(digest, size), bytes);
    await overwrite(store, digest, Buffer.from('CACHED ARTIFACT'));
    assert.deepEqual(await hot.get(digest, size), bytes, 'a verified copy in memory stays good');
    await integrity.quarantine(digest, 'in a test');
    // Moved away; damaged bytes put back by hand: the cache must load and hash them, not serve its old copy.
    await writeFile(store.localPath(digest), Buffer.from('cached artifacT'));
    await assert.rejects(hot.get(digest, size), (e: unknown) => e instanceof SnapError && e.code === 'artifact-missing');
  });
});
