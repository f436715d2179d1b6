/**
 * The S3 artifact store against a real S3-compatible server (SeaweedFS): the shared
 * ArtifactStore contract (create-only enforced, and with conditional writes off;
 * bare and behind the disk cache), then what only S3 has: key layout, multipart,
 * aborts, presigned GETs with ranges, one HEAD per burst of stats, configuration.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fetch } from 'undici';
import {
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { S3ArtifactStore, type S3StoreOptions } from '../../src/storage/s3/s3-store.js';
import { DiskCachedStore } from '../../src/storage/cache/disk-cache.js';
import { openArtifactStore } from '../../src/storage/config.js';
import { sha256Hex } from '../../src/util/hash.js';
import { startSeaweed, WEED_MISSING, type Seaweed } from '../support/seaweed.js';
import { artifactStoreContract, collect, isCode, type Backend } from './contract.js';

process.env.SNAPCLONE_LOG = 'error';

let weed: Seaweed | null = null;
before(async () => {
  weed = await startSeaweed();
});
after(async () => {
  await weed?.stop();
});

function s3Store(bucket: string, opts: Partial<S3StoreOptions> = {}): S3ArtifactStore {
  return new S3ArtifactStore({ bucket, endpoint: weed!.endpoint, region: weed!.region, credentials: weed!.credentials, ...opts });
}

async function rawGet(client: S3Client, bucket: string, key: string): Promise<Buffer> {
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

function s3Backend(name: string, opts: Partial<S3StoreOptions>, cached: boolean): Backend {
  return {
    name,
    skipReason: WEED_MISSING,
    async make() {
      if (!weed) return null;
      const bucket = await weed.createBucket();
      const s3 = s3Store(bucket, { prefix: 'pfx/', ...opts });
      const raw = weed.client();
      const cacheDir = cached ? await mkdtemp(join(tmpdir(), 'snapclone-s3cache-')) : null;
      return {
        store: cacheDir ? new DiskCachedStore(s3, { dir: cacheDir, maxBytes: 64 << 20 }) : s3,
        overwrite: async (digest, bytes) => {
          await raw.send(new PutObjectCommand({ Bucket: bucket, Key: `pfx/sha256/${digest}`, Body: bytes }));
        },
        close: async () => {
          s3.close();
          raw.destroy();
          if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
        },
      };
    },
  };
}

artifactStoreContract(s3Backend('s3', {}, false));
artifactStoreContract(s3Backend('s3 without conditional writes', { conditionalWrites: false }, false));
artifactStoreContract(s3Backend('s3 behind the disk cache', {}, true));

/** A client for the store that records each command it sends, and may fail some. */
function recordingClient(fail?: (command: string, input: Record<string, unknown>) => void): { client: S3Client; sent: string[] } {
  const client = weed!.client();
  const sent: string[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      sent.push(context.commandName!);
      fail?.(context.commandName!, args.input as Record<string, unknown>);
      return next(args);
    },
    { step: 'initialize', name: 'recordCommands' },
  );
  return { client, sent };
}

test('s3: the server enforces create-only: a second create of other bytes under a stored key is refused', async (t) => {
  if (!weed) return t.skip(WEED_MISSING);
  const bucket = await weed.createBucket();
  const store = s3Store(bucket, { prefix: 'a/b/' });
  const raw = weed.client();
  try {
    const bytes = Buffer.from('the real artifact');
    const { digest } = await store.putBytes(bytes);
    const key = `a/b/sha256/${digest}`;
    await assert.rejects(
      raw.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.from('other bytes entirely'), IfNoneMatch: '*' })),
      (err: { $metadata?: { httpStatusCode?: number } }) => err.$metadata?.httpStatusCode === 412,
    );
    assert.deepEqual(await rawGet(raw, bucket, key), bytes);
    // The layout: <prefix>sha256/<digest>, <prefix>quarantine/<digest>.
    await store.quarantine(digest, 'for the layout');
    const listed = await raw.send(new ListObjectsV2Command({ Bucket: bucket }));
    assert.deepEqual(listed.Contents?.map((o) => o.Key), [`a/b/quarantine/${digest}`]);
    assert.deepEqual(await rawGet(raw, bucket, `a/b/quarantine/${digest}`), bytes, 'the quarantined copy is kept for inspection');
  } finally {
    store.close();
    raw.destroy();
  }
});

test('s3: large files go up in parts streamed from the file, and read back whole and across part boundaries', async (t) => {
  if (!weed) return t.skip(WEED_MISSING);
  const bucket = await weed.createBucket();
  const bodies: unknown[] = [];
  const { client, sent } = recordingClient((cmd, input) => {
    if (cmd === 'UploadPartCommand') bodies.push(input.Body);
  });
  const store = s3Store(bucket, { client, multipartThreshold: 1 << 20, partSize: 5 << 20 });
  const dir = await mkdtemp(join(tmpdir(), 'snapclone-s3mp-'));
  try {
    const bytes = Buffer.alloc((11 << 20) + 3);
    for (let i = 0; i + 4 <= bytes.length; i += 4096) bytes.writeUInt32BE(i, i); // not all alike: a part out of place shows
    const src = join(dir, 'pack');
    await writeFile(src, bytes);
    const info = await store.putFile(src, sha256Hex(bytes));
    assert.deepEqual(info, { digest: sha256Hex(bytes), size: bytes.length });
    assert.equal(sent.filter((c) => c === 'UploadPartCommand').length, 3);
    assert.equal(sent.filter((c) => c === 'CompleteMultipartUploadCommand').length, 1);
    // Streams, not buffers: memory stays bounded however large the pack.
    for (const b of bodies) assert.ok(b instanceof Readable, 'each part body is a stream from the file');
    assert.equal(existsSync(src), false);
    assert.equal(sha256Hex(await store.read(info.digest)), info.digest);
    const span = { start: (5 << 20) - 10, end: (5 << 20) + 10 };
    assert.deepEqual(await collect(await store.open(info.digest, span)), bytes.subarray(span.start, span.end + 1));
    // Stored already: a HEAD answers, nothing is uploaded again.
    await writeFile(src, bytes);
    sent.length = 0;
    assert.deepEqual(await store.putFile(src), info);
    assert.deepEqual(sent, ['HeadObjectCommand']);
  } finally {
    store.close();
    client.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});

test('s3: a multipart upload that fails midway is aborted: no object, no upload left, the source kept', async (t) => {
  if (!weed) return t.skip(WEED_MISSING);
  const bucket = await weed.createBucket();
  let parts = 0;
  const { client } = recordingClient((cmd) => {
    if (cmd === 'UploadPartCommand' && ++parts === 2) throw new Error('network cable pulled');
  });
  const store = s3Store(bucket, { client, multipartThreshold: 1 << 20, partSize: 5 << 20 });
  const raw = weed.client();
  const dir = await mkdtemp(join(tmpdir(), 'snapclone-s3mp-'));
  try {
    const bytes = Buffer.alloc(12 << 20, 3);
    const src = join(dir, 'pack');
    await writeFile(src, bytes);
    await assert.rejects(store.putFile(src), /network cable pulled/);
    assert.equal(await store.stat(sha256Hex(bytes)), null);
    const uploads = await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    assert.deepEqual(uploads.Uploads ?? [], []);
    assert.deepEqual(await readFile(src), bytes);
  } finally {
    store.close();
    client.destroy();
    raw.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});

test('s3: a file changed between its hash and its upload does not land (the server checks Content-MD5)', async (t) => {
  if (!weed) return t.skip(WEED_MISSING);
  const bucket = await weed.createBucket();
  const dir = await mkdtemp(join(tmpdir(), 'snapclone-s3md5-'));
  const src = join(dir, 'pack');
  const bytes = Buffer.from('what was hashed');
  // Rewrite the file (same size) after the hash read, just before the PUT goes out.
  const { client } = recordingClient((cmd) => {
    if (cmd === 'PutObjectCommand') writeFileSync(src, 'WHAT WAS HASHED', { flag: 'r+' });
  });
  const store = s3Store(bucket, { client });
  try {
    await writeFile(src, bytes);
    await assert.rejects(store.putFile(src), isCode('unreachable'));
    assert.equal(await store.stat(sha256Hex(bytes)), null);
    assert.equal(existsSync(src), true);
  } finally {
    store.close();
    client.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});

test('s3: presigned GETs serve the artifact, byte ranges work, and they expire', async (t) => {
  if (!weed) return t.skip(WEED_MISSING);
  const bucket = await weed.createBucket();
  const store = s3Store(bucket);
  const cacheDir = await mkdtemp(join(tmpdir(), 'snapclone-s3cache-'));
  const cached = new DiskCachedStore(store, { dir: cacheDir, maxBytes: 1 << 20 });
  try {
    const bytes = Buffer.from('0123456789abcdefghij'.repeat(50));
    const { digest } = await store.putBytes(bytes);
    const url = await store.presign(digest, 60);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\//);
    assert.doesNotMatch(url, new RegExp(weed.credentials.secretAccessKey), 'the secret is never in the URL');
    const whole = await fetch(url);
    assert.equal(whole.status, 200);
    assert.deepEqual(Buffer.from(await whole.arrayBuffer()), bytes);
    const part = await fetch(url, { headers: { range: 'bytes=10-19' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 10-19/${bytes.length}`);
    assert.equal(await part.text(), 'abcdefghij');

    // Through the disk cache: passed through, the same URL kind.
    assert.equal(typeof cached.presign, 'function');
    const viaCache = await fetch(await cached.presign!(digest, 60), { headers: { range: 'bytes=-5' } });
    assert.equal(viaCache.status, 206);
    assert.equal(await viaCache.text(), 'fghij');

    const forged = await fetch(url.replace(/X-Amz-Signature=[0-9a-f]{8}/, 'X-Amz-Signature=00000000'));
    assert.equal(forged.status, 403, 'the server checks signatures');
    await forged.arrayBuffer();
    const absent = await fetch(await store.presign(sha256Hex('not stored'), 60));
    assert.equal(absent.status, 404);
    await absent.arrayBuffer();
    await assert.rejects(store.presign(digest, 0), isCode('invalid'));
    await assert.rejects(store.presign(digest, 8 * 24 * 3600), isCode('invalid'));

    const short = await store.presign(digest, 1);
    await new Promise((r) => setTimeout(r, 2100)); // past its expiry (not a speed assertion)
    const expired = await fetch(short);
    assert.equal(expired.status, 403);
    await expired.arrayBuffer();
  } finally {
    store.close();
    await rm(cacheDir, { recursive: true, force: true });
  }
});

test('s3: a burst of stats of one digest is one HEAD; a later stat asks again', async (t) => {
  if (!weed) return t.skip(WEED_MISSING);
  const bucket = await weed.createBucket();
  const { client, sent } = recordingClient();
  const store = s3Store(bucket, { client });
  try {
    const { digest, size } = await store.putBytes(Buffer.from('reused chunk'));
    sent.length = 0;
    const all = await Promise.all(Array.from({ length: 20 }, () => store.stat(digest)));
    for (const s of all) assert.deepEqual(s, { digest, size });
    assert.deepEqual(sent, ['HeadObjectCommand']);
    await store.quarantine(digest, 'gone');
    assert.equal(await store.stat(digest), null, 'no answer is kept past its request');
  } finally {
    store.close();
    client.destroy();
  }
});

test('s3: concurrent quarantines of one copy: exactly one moves it', async (t) => {
  if (!weed) return t.skip(WEED_MISSING);
  const bucket = await weed.createBucket();
  const store = s3Store(bucket);
  const other = s3Store(bucket);
  try {
    for (let i = 0; i < 5; i++) {
      const { digest } = await store.putBytes(Buffer.from(`artifact ${i}`));
      const { copy, stream } = await store.openCopy(digest);
      stream.destroy();
      const moved = await Promise.all([store.quarantine(digest, 'a', copy), other.quarantine(digest, 'b', copy), store.quarantine(digest, 'c', copy)]);
      assert.equal(moved.filter(Boolean).length, 1, `round ${i}`);
      assert.ok((await store.listQuarantined()).some((q) => q.digest === digest), `round ${i}`);
    }
  } finally {
    store.close();
    other.close();
  }
});

test('s3: an unreachable store is a one-line unreachable error naming the operation', async (t) => {
  if (!weed) return t.skip(WEED_MISSING);
  const store = new S3ArtifactStore({ bucket: 'nowhere', endpoint: 'http://127.0.0.1:1', credentials: weed.credentials });
  try {
    await assert.rejects(store.stat(sha256Hex('x')), (err: Error) => isCode('unreachable')(err) && /^object store: HEAD sha256\/[0-9a-f]{64} failed/.test(err.message) && !err.message.includes('\n'));
  } finally {
    store.close();
  }
});

test('s3: openArtifactStore selects S3 behind a disk cache from SNAPCLONE_S3_*, credentials from the standard chain', async (t) => {
  if (!weed) return t.skip(WEED_MISSING);
  const bucket = await weed.createBucket();
  const dataDir = await mkdtemp(join(tmpdir(), 'snapclone-s3cfg-'));
  const saved = { ...process.env };
  try {
    Object.assign(process.env, weed.env());
    const env = { ...process.env, SNAPCLONE_S3_BUCKET: bucket, SNAPCLONE_S3_PREFIX: 'deploy/' };
    const store = openArtifactStore(env, dataDir);
    assert.ok(store instanceof DiskCachedStore);
    const bytes = Buffer.from('configured');
    const { digest } = await store.putBytes(bytes);
    assert.deepEqual(await store.read(digest), bytes);
    const raw = weed.client();
    assert.deepEqual(await rawGet(raw, bucket, `deploy/sha256/${digest}`), bytes);
    raw.destroy();
    assert.ok(existsSync(join(dataDir, 's3-cache', digest)), 'the cache lives under <dataDir>/s3-cache');
    assert.ok(openArtifactStore({ ...env, SNAPCLONE_S3_CACHE_MB: '0' }, dataDir) instanceof S3ArtifactStore);
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('s3: a missing bucket is a configuration error: ping fails, and reads say unreachable, never artifact-missing', async (t) => {
  if (!weed) return t.skip(WEED_MISSING);
  const good = s3Store(await weed.createBucket());
  const missing = s3Store('no-such-bucket-xyz');
  try {
    await good.ping!();
    await assert.rejects(missing.ping!(), (err: Error) => isCode('unreachable')(err) && /no-such-bucket-xyz/.test(err.message) && !err.message.includes('\n'));
    await assert.rejects(missing.open(sha256Hex('x')), isCode('unreachable'));
    await assert.rejects(missing.read(sha256Hex('x')), isCode('unreachable'));
  } finally {
    good.close();
    missing.close();
  }
});
