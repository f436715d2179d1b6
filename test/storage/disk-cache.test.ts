/**
 * The disk cache in front of a real S3-compatible store (SeaweedFS): what it keeps,
 * what it evicts, and that a damaged cached copy is never served as good.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { S3ArtifactStore } from '../../src/storage/s3/s3-store.js';
import { DiskCachedStore } from '../../src/storage/cache/disk-cache.js';
import { sha256Hex } from '../../src/util/hash.js';
import { startSeaweed, WEED_MISSING, type Seaweed } from '../support/seaweed.js';
import { collect, isCode } from './contract.js';
import { rotInPlace } from './rot.js';

process.env.SNAPCLONE_LOG = 'error';

let weed: Seaweed | null = null;
before(async () => {
  weed = await startSeaweed();
});
after(async () => {
  await weed?.stop();
});

interface Rig {
  remote: S3ArtifactStore;
  cache: DiskCachedStore;
  dir: string;
  /** Put straight into the bucket (the cache does not see it). */
  putRemote(bytes: Buffer): Promise<string>;
  removeRemote(digest: string): Promise<void>;
  overwriteRemote(digest: string, bytes: Buffer): Promise<void>;
  reopen(maxBytes?: number): DiskCachedStore;
}

async function withRig(t: { skip(msg: string): void }, maxBytes: number, fn: (r: Rig) => Promise<void>): Promise<void> {
  if (!weed) return t.skip(WEED_MISSING);
  const bucket = await weed.createBucket();
  const remote = new S3ArtifactStore({ bucket, endpoint: weed.endpoint, credentials: weed.credentials });
  const raw = weed.client();
  const dir = await mkdtemp(join(tmpdir(), 'snapclone-cache-'));
  const cacheDir = join(dir, 'cache');
  try {
    await fn({
      remote,
      cache: new DiskCachedStore(remote, { dir: cacheDir, maxBytes }),
      dir: cacheDir,
      putRemote: async (bytes) => (await remote.putBytes(bytes)).digest,
      removeRemote: async (digest) => void (await raw.send(new DeleteObjectCommand({ Bucket: bucket, Key: `sha256/${digest}` }))),
      overwriteRemote: async (digest, bytes) => void (await raw.send(new PutObjectCommand({ Bucket: bucket, Key: `sha256/${digest}`, Body: bytes }))),
      reopen: (m = maxBytes) => new DiskCachedStore(remote, { dir: cacheDir, maxBytes: m }),
    });
  } finally {
    remote.close();
    raw.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

test('cache: whole reads fill it and are then served from disk; range reads of a missing artifact do not fill', async (t) => {
  await withRig(t, 1 << 20, async ({ cache, putRemote, removeRemote, dir }) => {
    const a = Buffer.from('artifact a '.repeat(100));
    const b = Buffer.from('artifact b '.repeat(100));
    const da = await putRemote(a);
    const db = await putRemote(b);
    assert.deepEqual(await collect(await cache.open(db, { start: 3, end: 9 })), b.subarray(3, 10));
    assert.equal(cache.has(db), false, 'a range read goes straight to the remote');
    assert.deepEqual(await collect(await cache.open(da)), a);
    assert.deepEqual(await cache.read(db), b);
    assert.ok(cache.has(da) && cache.has(db));
    assert.equal(cache.bytes, a.length + b.length);
    assert.deepEqual((await readdir(dir)).filter((n) => n !== 'tmp').sort(), [da, db].sort());
    assert.deepEqual(await readdir(join(dir, 'tmp')), []);

    // Gone from the bucket: served from disk, yet stat tells the bucket's truth.
    await removeRemote(da);
    await removeRemote(db);
    assert.deepEqual(await cache.read(da), a);
    assert.deepEqual(await collect(await cache.open(db)), b);
    assert.deepEqual(await collect(await cache.open(db, { start: 0, end: 4 })), b.subarray(0, 5));
    assert.equal(await cache.stat(da), null);
  });
});

test('cache: bounded by bytes, the least recently used evicted first', async (t) => {
  await withRig(t, 2500, async ({ cache, putRemote, dir }) => {
    const [x, y, z] = ['x', 'y', 'z'].map((c) => Buffer.alloc(1000, c));
    const [dx, dy, dz] = [await putRemote(x!), await putRemote(y!), await putRemote(z!)];
    await cache.read(dx!);
    await cache.read(dy!);
    await cache.read(dx!); // x is now the more recently used
    await cache.read(dz!);
    assert.equal(cache.has(dy!), false, 'y was least recently used');
    assert.ok(cache.has(dx!) && cache.has(dz!));
    assert.equal(cache.bytes, 2000);
    assert.equal(existsSync(join(dir, dy!)), false);
    // Larger than the whole cache: served, never kept.
    const big = Buffer.alloc(3000, 'b');
    const dbig = await putRemote(big);
    assert.deepEqual(await collect(await cache.open(dbig)), big);
    assert.equal(cache.has(dbig), false);
    assert.ok(cache.has(dx!) && cache.has(dz!), 'nothing evicted for it');
    assert.deepEqual(await readdir(join(dir, 'tmp')), []);
  });
});

test('cache: a damaged cached copy is not served: a rewritten file, and bit rot no stat can see', async (t) => {
  await withRig(t, 1 << 20, async ({ cache, putRemote, dir }) => {
    const bytes = Buffer.from('the good bytes of a manifest '.repeat(200));
    const d = await putRemote(bytes);
    assert.deepEqual(await cache.read(d), bytes);
    const path = join(dir, d);

    // Rewritten on disk (new mtime): refused on sight, fetched again, right bytes.
    await writeFile(path, Buffer.alloc(bytes.length, 'X'));
    assert.deepEqual(await cache.read(d), bytes);
    await writeFile(path, Buffer.alloc(bytes.length, 'X'));
    assert.deepEqual(await collect(await cache.open(d)), bytes);
    assert.deepEqual(await collect(await cache.open(d, { start: 0, end: 9 })), bytes.subarray(0, 10));

    // Same inode, size and mtime: read() hashes what it serves, and fetches again.
    await rotInPlace(path, 100);
    assert.deepEqual(await cache.read(d), bytes);
    assert.equal(cache.has(d), true, 'kept again, from the remote');
    // A whole stream cannot take back bytes sent, but it fails before the end instead of passing for complete.
    await rotInPlace(path, bytes.length - 1);
    await assert.rejects(collect(await cache.open(d)), isCode('integrity'));
    assert.equal(cache.has(d), false, 'the damaged copy is dropped');
    assert.deepEqual(await collect(await cache.open(d)), bytes, 'the next read is right');
  });
});

test('cache: after a restart it keeps what it had, hashing each file again on first use', async (t) => {
  await withRig(t, 1 << 20, async ({ cache, putRemote, removeRemote, reopen, dir }) => {
    const good = Buffer.from('survives restarts '.repeat(50));
    const rotten = Buffer.from('rots while we are down '.repeat(50));
    const dg = await putRemote(good);
    const dr = await putRemote(rotten);
    await cache.read(dg);
    await cache.read(dr);
    await rotInPlace(join(dir, dr), 7);
    // A fill cut short by a crash, and one of a live process (ours).
    await writeFile(join(dir, 'tmp', `${spawnSync('true').pid}-0123`), 'partial');

    const again = reopen();
    assert.ok(again.has(dg) && again.has(dr));
    assert.deepEqual(await readdir(join(dir, 'tmp')), []);
    await removeRemote(dg);
    assert.deepEqual(await collect(await again.open(dg, { start: 0, end: 7 })), good.subarray(0, 8), 'served from disk after its hash');
    // The rotten one: even a range read (which alone cannot be verified) is served from the remote.
    assert.deepEqual(await collect(await again.open(dr, { start: 5, end: 9 })), rotten.subarray(5, 10));
    assert.equal(again.has(dr), false);

    // A smaller limit than last run evicts at start.
    const small = reopen(good.length);
    assert.ok(small.bytes <= good.length);
  });
});

test('cache: wrong bytes from the remote pass through for the caller to find, and are never kept', async (t) => {
  await withRig(t, 1 << 20, async ({ cache, putRemote, overwriteRemote }) => {
    const bytes = Buffer.from('what the digest promises');
    const d = await putRemote(bytes);
    await overwriteRemote(d, Buffer.from('what the bucket now has!'));
    assert.notEqual(sha256Hex(await cache.read(d)), d);
    assert.equal(cache.has(d), false);
    assert.notEqual(sha256Hex(await collect(await cache.open(d))), d);
    assert.equal(cache.has(d), false);
  });
});

test('cache: a whole read cut short keeps nothing; quarantine drops the cached copy; puts keep small ones', async (t) => {
  await withRig(t, 16 << 20, async ({ cache, putRemote, remote, dir }) => {
    const big = Buffer.alloc(8 << 20, 5);
    const d = await putRemote(big);
    const stream = await cache.open(d);
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    stream.destroy();
    await new Promise((r) => setTimeout(r, 100)); // let the destroy's cleanup run
    assert.equal(cache.has(d), false);
    assert.deepEqual(await readdir(join(dir, 'tmp')), []);
    assert.equal(existsSync(join(dir, d)), false);

    const manifest = Buffer.from('{"a":"manifest"}');
    const m = await cache.putBytes(manifest);
    assert.equal(cache.has(m.digest), true);
    assert.deepEqual(await remote.read(m.digest), manifest, 'the put went to the bucket');
    assert.equal(await cache.quarantine(m.digest, 'reported damaged'), true);
    assert.equal(cache.has(m.digest), false);
    await assert.rejects(cache.read(m.digest), isCode('artifact-missing'));
    assert.deepEqual((await cache.listQuarantined()).map((q) => q.digest), [m.digest]);
  });
});

test('cache: an integrity check (openCopy) makes the cached copy be hashed again before its next use, range reads too', async (t) => {
  await withRig(t, 1 << 20, async ({ cache, putRemote, dir }) => {
    const bytes = Buffer.from('a pack served in ranges '.repeat(300));
    const d = await putRemote(bytes);
    assert.deepEqual(await cache.read(d), bytes);
    await rotInPlace(join(dir, d), 10);
    // A client found wrong bytes and reported them: the server re-hashes through openCopy (the bucket's copy).
    const { stream } = await cache.openCopy(d);
    assert.equal(sha256Hex(await collect(stream)), d, 'the bucket copy is intact');
    assert.deepEqual(await collect(await cache.open(d, { start: 0, end: 99 })), bytes.subarray(0, 100), 'the rotten cached copy is not served');
    assert.equal(cache.has(d), false, 'and it is dropped');
  });
});

test('cache: while the bucket is unreachable, stat and reads answer from verified cached copies only', async (t) => {
  await withRig(t, 1 << 20, async ({ cache, putRemote, dir }) => {
    const good = Buffer.from('cached before the outage '.repeat(40));
    const rotten = Buffer.from('rots during the outage '.repeat(40));
    const dg = await putRemote(good);
    const dr = await putRemote(rotten);
    const du = await putRemote(Buffer.from('never cached'));
    await cache.read(dg);
    await cache.read(dr);
    await rotInPlace(join(dir, dr), 3);
    const down = new S3ArtifactStore({ bucket: 'any', endpoint: 'http://127.0.0.1:1', credentials: weed!.credentials });
    try {
      // A restart while the bucket is down: the files are hashed before they are vouched for.
      const offline = new DiskCachedStore(down, { dir, maxBytes: 1 << 20 });
      assert.deepEqual(await offline.stat(dg), { digest: dg, size: good.length });
      assert.deepEqual(await collect(await offline.open(dg)), good);
      assert.deepEqual(await collect(await offline.open(dg, { start: 2, end: 5 })), good.subarray(2, 6));
      await assert.rejects(offline.stat(dr), isCode('unreachable'), 'a damaged copy is not vouched for');
      assert.equal(offline.has(dr), false);
      await assert.rejects(offline.stat(du), isCode('unreachable'));
    } finally {
      down.close();
    }
  });
});

test('cache: ping checks the bucket and the cache directory', async (t) => {
  await withRig(t, 1 << 20, async ({ cache, dir }) => {
    await cache.ping!();
    const missing = new S3ArtifactStore({ bucket: 'no-such-bucket-xyz', endpoint: weed!.endpoint, credentials: weed!.credentials });
    try {
      await assert.rejects(new DiskCachedStore(missing, { dir, maxBytes: 1 << 20 }).ping!(), isCode('unreachable'));
    } finally {
      missing.close();
    }
    await rm(dir, { recursive: true, force: true });
    await assert.rejects(cache.ping!(), /^Error: disk cache |disk cache .*ENOENT/);
  });
});

test('cache: a whole read with keep: false (a bootstrap copying packs into a mirror) is served but not kept', async (t) => {
  await withRig(t, 1 << 20, async ({ cache, putRemote, dir }) => {
    const pack = Buffer.from('a history pack '.repeat(500));
    const d = await putRemote(pack);
    assert.deepEqual(await collect(await cache.open(d, undefined, { keep: false })), pack);
    assert.equal(cache.has(d), false);
    assert.deepEqual((await readdir(dir)).filter((n) => n !== 'tmp'), []);
    assert.deepEqual(await collect(await cache.open(d)), pack);
    assert.equal(cache.has(d), true, 'an ordinary whole read keeps it');
  });
});
