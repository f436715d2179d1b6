/**
 * The ArtifactStore contract, as one suite any backend runs (local disk, S3, S3 behind
 * the disk cache). Backend-specific behaviour (file modes, tmp dirs, rename races,
 * multipart, presigning) is tested in that backend's own file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { ArtifactStore } from '../../src/storage/artifact-store.js';
import { SnapError } from '../../src/util/errors.js';
import { sha256Hex } from '../../src/util/hash.js';

export interface BackendStore {
  store: ArtifactStore;
  /** Replace the stored bytes of `digest` behind the store's back (damage at rest). */
  overwrite(digest: string, bytes: Buffer): Promise<void>;
  close(): Promise<void>;
}

/** A fresh, empty store per call; null when the backend is not available here (the test skips with `skipReason`). */
export interface Backend {
  name: string;
  make(): Promise<BackendStore | null>;
  skipReason: string;
}

export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export function isCode(code: string) {
  return (err: unknown) => err instanceof SnapError && err.code === code;
}

export function artifactStoreContract(backend: Backend): void {
  const it = (name: string, fn: (s: BackendStore, dir: string) => Promise<void>) =>
    test(`${backend.name}: ${name}`, async (t) => {
      const s = await backend.make();
      if (!s) return t.skip(backend.skipReason);
      const dir = await mkdtemp(join(tmpdir(), 'snapclone-contract-'));
      try {
        await fn(s, dir);
      } finally {
        await s.close();
        await rm(dir, { recursive: true, force: true });
      }
    });

  it('putBytes, read, stat, open and ranges round trip', async ({ store }) => {
    const bytes = Buffer.from('hello, clonepack world\n'.repeat(1000));
    const info = await store.putBytes(bytes);
    assert.deepEqual(info, { digest: sha256Hex(bytes), size: bytes.length });
    assert.deepEqual(await store.stat(info.digest), info);
    assert.deepEqual(await store.read(info.digest), bytes);
    assert.deepEqual(await collect(await store.open(info.digest)), bytes);
    assert.deepEqual(await collect(await store.open(info.digest, { start: 7, end: 15 })), bytes.subarray(7, 16));
    assert.deepEqual(await collect(await store.open(info.digest, { start: 0, end: 0 })), bytes.subarray(0, 1));
    const tail = await collect(await store.open(info.digest, { start: bytes.length - 3, end: bytes.length + 100 }));
    assert.deepEqual(tail, bytes.subarray(bytes.length - 3), 'an end past the artifact is clamped');
    await assert.rejects(store.open(info.digest, { start: bytes.length, end: bytes.length + 1 }), isCode('invalid'));
    await assert.rejects(store.open(info.digest, { start: 5, end: 4 }), isCode('invalid'));
    await assert.rejects(store.open(info.digest, { start: -1, end: 4 }), isCode('invalid'));
    const copy = await store.openCopy(info.digest);
    assert.deepEqual(await collect(copy.stream), bytes);
    assert.equal(typeof copy.copy, 'string');

    const empty = await store.putBytes(new Uint8Array(0));
    assert.deepEqual(empty, { digest: sha256Hex(''), size: 0 });
    assert.deepEqual(await store.stat(empty.digest), empty);
    assert.deepEqual(await store.read(empty.digest), Buffer.alloc(0));
    assert.deepEqual(await collect(await store.open(empty.digest)), Buffer.alloc(0));
  });

  it('putFile verifies and consumes the source; with no digest given it computes it', async ({ store }, dir) => {
    const bytes = Buffer.alloc(3 << 20, 7); // several read chunks
    const src = join(dir, 'pack');
    await writeFile(src, bytes);
    assert.deepEqual(await store.putFile(src, sha256Hex(bytes)), { digest: sha256Hex(bytes), size: bytes.length });
    assert.equal(existsSync(src), false);
    assert.deepEqual(await store.read(sha256Hex(bytes)), bytes);
    const other = Buffer.from('no digest claimed');
    await writeFile(src, other);
    assert.deepEqual(await store.putFile(src), { digest: sha256Hex(other), size: other.length });
    assert.deepEqual(await store.read(sha256Hex(other)), other);
    const empty = join(dir, 'empty');
    await writeFile(empty, '');
    assert.deepEqual(await store.putFile(empty), { digest: sha256Hex(''), size: 0 });
  });

  it('a wrong digest is refused, nothing is stored, the source is left', async ({ store }, dir) => {
    const src = join(dir, 'pack');
    await writeFile(src, 'real bytes');
    const claimed = sha256Hex('other bytes');
    await assert.rejects(store.putFile(src, claimed), isCode('integrity'));
    assert.equal(await store.stat(claimed), null);
    assert.equal(await store.stat(sha256Hex('real bytes')), null);
    assert.equal(await readFile(src, 'utf8'), 'real bytes');
    await assert.rejects(store.putFile(join(dir, 'missing'), claimed));
  });

  it('putting an existing digest is a no-op that leaves the stored copy alone', async ({ store, overwrite }, dir) => {
    const bytes = Buffer.from('manifest v1');
    const first = await store.putBytes(bytes);
    // Same size, other bytes behind the store's back: a put that overwrote would restore `bytes`.
    const marker = Buffer.from('MANIFEST v1');
    await overwrite(first.digest, marker);
    assert.deepEqual(await store.putBytes(bytes), first);
    const src = join(dir, 'again');
    await writeFile(src, bytes);
    assert.deepEqual(await store.putFile(src, first.digest), first);
    assert.equal(existsSync(src), false, 'source is consumed even when the artifact already exists');
    assert.deepEqual(await collect((await store.openCopy(first.digest)).stream), marker, 'the stored copy was not written again');
  });

  it('invalid digests are rejected', async ({ store }, dir) => {
    await writeFile(join(dir, 'secret'), 'do not store');
    for (const d of ['../x', 'A'.repeat(64), 'a'.repeat(63), 'a'.repeat(65), '', `${'a'.repeat(62)}/x`]) {
      await assert.rejects(store.open(d), isCode('invalid'), d);
      await assert.rejects(store.read(d), isCode('invalid'), d);
      await assert.rejects(store.stat(d), isCode('invalid'), d);
      await assert.rejects(store.openCopy(d), isCode('invalid'), d);
      await assert.rejects(store.quarantine(d, 'x'), isCode('invalid'), d);
      await assert.rejects(store.putFile(join(dir, 'secret'), d), isCode('invalid'), d);
    }
    assert.equal(existsSync(join(dir, 'secret')), true);
  });

  it('absent artifacts: stat is null, open and read are artifact-missing', async ({ store }) => {
    const d = sha256Hex('never stored');
    assert.equal(await store.stat(d), null);
    await assert.rejects(store.open(d), isCode('artifact-missing'));
    await assert.rejects(store.open(d, { start: 0, end: 1 }), isCode('artifact-missing'));
    await assert.rejects(store.openCopy(d), isCode('artifact-missing'));
    await assert.rejects(store.read(d), isCode('artifact-missing'));
    assert.equal(await store.quarantine(d, 'nothing there'), false);
    assert.deepEqual(await store.listQuarantined(), []);
  });

  it('quarantine: reads as absent, listed with a one-line reason, until a put restores it', async ({ store }, dir) => {
    const bytes = Buffer.from('a history pack, supposedly');
    const { digest } = await store.putBytes(bytes);
    assert.deepEqual(await store.read(digest), bytes); // cached, where there is a cache
    const t0 = Date.now() - 1000; // S3 metadata keeps milliseconds, but allow clock skew of the store's LastModified
    assert.equal(await store.quarantine(digest, 'hash mismatch\nsecond line'), true);
    assert.equal(await store.stat(digest), null);
    await assert.rejects(store.open(digest), isCode('artifact-missing'));
    await assert.rejects(store.read(digest), isCode('artifact-missing'));
    const listed = await store.listQuarantined();
    assert.deepEqual(listed.map((q) => [q.digest, q.reason]), [[digest, 'hash mismatch second line']]);
    assert.ok(listed[0]!.since >= t0 && listed[0]!.since <= Date.now() + 1000);
    assert.equal(await store.quarantine(digest, 'again'), false, 'nothing left to move');

    assert.deepEqual(await store.putBytes(bytes), { digest, size: bytes.length });
    assert.deepEqual(await store.read(digest), bytes);
    assert.deepEqual(await store.listQuarantined(), []);
    await store.quarantine(digest, 'again');
    const src = join(dir, 'rebuilt');
    await writeFile(src, bytes);
    assert.deepEqual(await store.putFile(src, digest), { digest, size: bytes.length });
    assert.deepEqual(await store.read(digest), bytes);
    assert.deepEqual(await store.listQuarantined(), []);
  });

  it('a stored copy of the wrong size is replaced by a put of verified bytes', async ({ store, overwrite }, dir) => {
    const bytes = Buffer.alloc(3 << 20, 9);
    const src = join(dir, 'pack');
    await writeFile(src, bytes);
    const { digest } = await store.putFile(src);
    await overwrite(digest, bytes.subarray(0, 1000));
    await writeFile(src, bytes);
    assert.deepEqual(await store.putFile(src), { digest, size: bytes.length });
    assert.deepEqual(await collect((await store.openCopy(digest)).stream), bytes);
    const small = Buffer.from('{"manifest":true}');
    const m = await store.putBytes(small);
    await overwrite(m.digest, small.subarray(0, 3));
    assert.deepEqual(await store.putBytes(small), m);
    assert.deepEqual(await store.read(m.digest), small);
    assert.deepEqual(await store.listQuarantined(), [], 'replaced, so no longer quarantined');
  });

  it('quarantine given a copy moves that copy only, never one stored since', async ({ store, overwrite }) => {
    const bytes = Buffer.from('good bytes of an artifact');
    const { digest } = await store.putBytes(bytes);
    await overwrite(digest, Buffer.from('rot'));
    const damaged = await store.openCopy(digest);
    assert.deepEqual(await collect(damaged.stream), Buffer.from('rot'));
    // A rebuild's put replaces the damaged copy (wrong size) before the quarantine lands.
    assert.deepEqual(await store.putBytes(bytes), { digest, size: bytes.length });
    assert.equal(await store.quarantine(digest, 'hashed wrong', damaged.copy), false);
    assert.deepEqual(await store.read(digest), bytes);
    // The copy read now is the one quarantined when named.
    const good = await store.openCopy(digest);
    await collect(good.stream);
    assert.equal(await store.quarantine(digest, 'told to', good.copy), true);
    assert.equal(await store.stat(digest), null);
  });

  it('concurrent puts of the same bytes all succeed with one artifact', async ({ store }, dir) => {
    const bytes = Buffer.alloc(1 << 20, 42);
    const digest = sha256Hex(bytes);
    const srcs = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const p = join(dir, `src${i}`);
        await writeFile(p, bytes);
        return p;
      }),
    );
    const results = await Promise.all([store.putBytes(bytes), store.putBytes(bytes), ...srcs.map((p) => store.putFile(p, digest))]);
    for (const r of results) assert.deepEqual(r, { digest, size: bytes.length });
    assert.deepEqual(await store.read(digest), bytes);
    for (const p of srcs) assert.equal(existsSync(p), false);
  });

  it('list names every stored good artifact with its size, not quarantined ones', async ({ store }) => {
    const a = await store.putBytes(Buffer.from('artifact a\n'));
    const b = await store.putBytes(Buffer.alloc(70_000, 7));
    const q = await store.putBytes(Buffer.from('to be quarantined\n'));
    assert.equal(await store.quarantine(q.digest, 'test'), true);
    const listed: { digest: string; size: number }[] = [];
    for await (const i of store.list()) listed.push({ digest: i.digest, size: i.size });
    const byDigest = (x: { digest: string }, y: { digest: string }) => (x.digest < y.digest ? -1 : 1);
    assert.deepEqual(listed.sort(byDigest), [a, b].sort(byDigest));
  });

  it('delete removes the stored copy (true once, then false); a put stores it again', async ({ store }) => {
    const bytes = Buffer.from('short-lived artifact\n'.repeat(50));
    const keep = await store.putBytes(Buffer.from('stays\n'));
    const info = await store.putBytes(bytes);
    assert.deepEqual(await store.read(info.digest), bytes); // a cache in front now holds a copy too
    assert.equal(await store.delete(info.digest), true);
    assert.equal(await store.stat(info.digest), null);
    await assert.rejects(store.read(info.digest), isCode('artifact-missing'));
    await assert.rejects(store.open(info.digest), isCode('artifact-missing'));
    assert.equal(await store.delete(info.digest), false);
    const listed: string[] = [];
    for await (const i of store.list()) listed.push(i.digest);
    assert.deepEqual(listed, [keep.digest]);
    assert.deepEqual(await store.putBytes(bytes), info);
    assert.deepEqual(await store.read(info.digest), bytes);
    await assert.rejects(store.delete('nope'), isCode('invalid'));
  });
}
