import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile, utimes } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { LocalArtifactStore } from '../../src/storage/local/local-store.js';
import { SnapError } from '../../src/util/errors.js';
import { sha256Hex } from '../../src/util/hash.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'snapclone-store-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function isCode(code: string) {
  return (err: unknown) => err instanceof SnapError && err.code === code;
}

/** Every artifact file under root (ignores tmp/). */
async function artifacts(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(root)) {
    if (d === 'tmp' || d === 'quarantine') continue;
    for (const f of await readdir(join(root, d))) out.push(`${d}/${f}`);
  }
  return out.sort();
}

test('putBytes, read, stat, open and ranges round trip', async () => {
  await withDir(async (dir) => {
    const store = new LocalArtifactStore(join(dir, 'store'));
    const bytes = Buffer.from('hello, clonepack world\n'.repeat(1000));
    const info = await store.putBytes(bytes);
    assert.equal(info.digest, sha256Hex(bytes));
    assert.equal(info.size, bytes.length);

    assert.deepEqual(await store.stat(info.digest), info);
    assert.deepEqual(await store.read(info.digest), bytes);
    assert.deepEqual(await collect(await store.open(info.digest)), bytes);
    assert.deepEqual(await collect(await store.open(info.digest, { start: 7, end: 15 })), bytes.subarray(7, 16));
    assert.deepEqual(await collect(await store.open(info.digest, { start: 0, end: 0 })), bytes.subarray(0, 1));
    // An end past the artifact is clamped, as with an HTTP range.
    const tail = await collect(await store.open(info.digest, { start: bytes.length - 3, end: bytes.length + 100 }));
    assert.deepEqual(tail, bytes.subarray(bytes.length - 3));
    await assert.rejects(store.open(info.digest, { start: bytes.length, end: bytes.length + 1 }), isCode('invalid'));
    await assert.rejects(store.open(info.digest, { start: 5, end: 4 }), isCode('invalid'));
    await assert.rejects(store.open(info.digest, { start: -1, end: 4 }), isCode('invalid'));

    // Layout and permissions.
    const path = store.localPath(info.digest);
    assert.equal(path, join(dir, 'store', info.digest.slice(0, 2), info.digest));
    assert.equal((await stat(path)).mode & 0o777, 0o444);
    assert.deepEqual(await readdir(join(dir, 'store', 'tmp')), []);

    // Empty artifacts are artifacts too.
    const empty = await store.putBytes(new Uint8Array(0));
    assert.equal(empty.size, 0);
    assert.deepEqual(await store.read(empty.digest), Buffer.alloc(0));
  });
});

test('putFile verifies, consumes the source and stores read-only', async () => {
  await withDir(async (dir) => {
    const store = new LocalArtifactStore(join(dir, 'store'));
    const bytes = Buffer.alloc(3 << 20, 7); // several read chunks
    const src = join(dir, 'pack');
    await writeFile(src, bytes);
    const info = await store.putFile(src, sha256Hex(bytes));
    assert.deepEqual(info, { digest: sha256Hex(bytes), size: bytes.length });
    assert.equal(existsSync(src), false);
    assert.deepEqual(await store.read(info.digest), bytes);
    assert.equal((await stat(store.localPath(info.digest))).mode & 0o777, 0o444);
    assert.deepEqual(await readdir(join(dir, 'store', 'tmp')), []);
  });
});

test('a wrong digest is refused and nothing is stored', async () => {
  await withDir(async (dir) => {
    const root = join(dir, 'store');
    const store = new LocalArtifactStore(root);
    const src = join(dir, 'pack');
    await writeFile(src, 'real bytes');
    const claimed = sha256Hex('other bytes');
    await assert.rejects(store.putFile(src, claimed), isCode('integrity'));
    assert.equal(await store.stat(claimed), null);
    assert.deepEqual(await artifacts(root), []);
    assert.deepEqual(await readdir(join(root, 'tmp')), []);
    // The refused source is left as it was.
    assert.equal(await readFile(src, 'utf8'), 'real bytes');
  });
});

test('putting an existing digest is a no-op that leaves the stored file alone', async () => {
  await withDir(async (dir) => {
    const root = join(dir, 'store');
    const store = new LocalArtifactStore(root);
    const bytes = Buffer.from('manifest v1');
    const first = await store.putBytes(bytes);
    const path = store.localPath(first.digest);
    const before = await stat(path);

    assert.deepEqual(await store.putBytes(bytes), first);
    const src = join(dir, 'again');
    await writeFile(src, bytes);
    assert.deepEqual(await store.putFile(src, first.digest), first);
    assert.equal(existsSync(src), false, 'source is consumed even when the artifact already exists');

    const after = await stat(path);
    assert.equal(after.ino, before.ino);
    assert.equal(after.mtimeMs, before.mtimeMs);
    assert.equal(after.mode & 0o777, 0o444);
    assert.deepEqual(await artifacts(root), [`${first.digest.slice(0, 2)}/${first.digest}`]);
  });
});

test('invalid digests are rejected before touching the filesystem', async () => {
  await withDir(async (dir) => {
    const root = join(dir, 'store');
    const store = new LocalArtifactStore(root);
    await writeFile(join(dir, 'secret'), 'do not serve');
    const bad = [
      '../x',
      '../secret',
      `../../${'a'.repeat(61)}`,
      'A'.repeat(64), // uppercase is not the canonical form
      'a'.repeat(63),
      'a'.repeat(65),
      '',
      'tmp',
      `${'a'.repeat(62)}/x`,
    ];
    for (const d of bad) {
      await assert.rejects(store.open(d), isCode('invalid'), d);
      await assert.rejects(store.read(d), isCode('invalid'), d);
      await assert.rejects(store.stat(d), isCode('invalid'), d);
      assert.throws(() => store.localPath(d), isCode('invalid'), d);
      await assert.rejects(store.putFile(join(dir, 'secret'), d), isCode('invalid'), d);
    }
    assert.equal(existsSync(join(dir, 'secret')), true);
  });
});

test('absent artifacts: stat is null, open and read are artifact-missing', async () => {
  await withDir(async (dir) => {
    const store = new LocalArtifactStore(join(dir, 'store'));
    const d = sha256Hex('never stored');
    assert.equal(await store.stat(d), null);
    await assert.rejects(store.open(d), isCode('artifact-missing'));
    await assert.rejects(store.open(d, { start: 0, end: 1 }), isCode('artifact-missing'));
    await assert.rejects(store.read(d), isCode('artifact-missing'));
    assert.equal(await store.quarantine(d, 'nothing there'), false);
    assert.deepEqual(await store.listQuarantined(), []);
  });
});

test('concurrent puts of the same bytes all succeed with one artifact', async () => {
  await withDir(async (dir) => {
    const root = join(dir, 'store');
    const store = new LocalArtifactStore(root);
    const other = new LocalArtifactStore(root); // a second writer on the same root
    const bytes = Buffer.alloc(1 << 20, 42);
    const digest = sha256Hex(bytes);
    const srcs = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const p = join(dir, `src${i}`);
        await writeFile(p, bytes);
        return p;
      }),
    );
    const results = await Promise.all([
      store.putBytes(bytes),
      other.putBytes(bytes),
      ...srcs.map((p, i) => (i % 2 ? store : other).putFile(p, digest)),
    ]);
    for (const r of results) assert.deepEqual(r, { digest, size: bytes.length });
    assert.deepEqual(await artifacts(root), [`${digest.slice(0, 2)}/${digest}`]);
    assert.deepEqual(await store.read(digest), bytes);
    assert.deepEqual(await readdir(join(root, 'tmp')), []);
  });
});

test('construction removes tmp files of dead writers and old ones, keeps live fresh ones', async () => {
  await withDir(async (dir) => {
    const root = join(dir, 'store');
    new LocalArtifactStore(root);
    const tmp = join(root, 'tmp');
    // A pid far above any pid_max: its owner is certainly gone.
    await writeFile(join(tmp, '999999999-deadbeef'), 'partial');
    await writeFile(join(tmp, 'garbage'), 'partial');
    await writeFile(join(tmp, `${process.pid}-live`), 'in progress');
    await writeFile(join(tmp, `${process.pid}-old`), 'abandoned');
    const longAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(join(tmp, `${process.pid}-old`), longAgo, longAgo);

    const store = new LocalArtifactStore(root);
    assert.deepEqual(await readdir(tmp), [`${process.pid}-live`]);
    assert.deepEqual(await artifacts(root), []);
    // The store still works after cleaning.
    const info = await store.putBytes(Buffer.from('x'));
    assert.deepEqual(await store.read(info.digest), Buffer.from('x'));
  });
});

test('putFile from another filesystem copies, verifies and consumes the source', async (t) => {
  await withDir(async (dir) => {
    const root = join(dir, 'store');
    const store = new LocalArtifactStore(root);
    let other: string;
    try {
      other = await mkdtemp('/dev/shm/snapclone-store-');
    } catch {
      t.skip('no /dev/shm');
      return;
    }
    try {
      if ((await stat(other)).dev === (await stat(root)).dev) {
        t.skip('/dev/shm is on the same filesystem');
        return;
      }
      const bytes = Buffer.from('cross-device pack');
      const src = join(other, 'pack');
      await writeFile(src, bytes);
      await assert.rejects(store.putFile(src, sha256Hex('nope')), isCode('integrity'));
      assert.equal(existsSync(src), true, 'a refused cross-device source is left in place');
      assert.deepEqual(await artifacts(root), []);
      const info = await store.putFile(src, sha256Hex(bytes));
      assert.equal(existsSync(src), false);
      assert.deepEqual(await store.read(info.digest), bytes);
      assert.deepEqual(await readdir(join(root, 'tmp')), []);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});

test('a put that fails midway leaves no artifact and no tmp file', async () => {
  await withDir(async (dir) => {
    const root = join(dir, 'store');
    const store = new LocalArtifactStore(root);
    await assert.rejects(store.putFile(join(dir, 'missing'), sha256Hex('x')));
    const notFile = join(dir, 'somedir');
    await mkdir(notFile);
    await writeFile(join(notFile, 'f'), 'x');
    await assert.rejects(store.putFile(notFile, sha256Hex('x')), isCode('invalid'));
    assert.equal(await readFile(join(notFile, 'f'), 'utf8'), 'x');
    assert.deepEqual(await artifacts(root), []);
    assert.deepEqual(await readdir(join(root, 'tmp')), []);
  });
});

test('quarantine moves a copy aside with its reason; it reads as absent until a put restores it', async () => {
  await withDir(async (dir) => {
    const root = join(dir, 'store');
    const store = new LocalArtifactStore(root);
    const bytes = Buffer.from('a history pack, supposedly');
    const { digest } = await store.putBytes(bytes);
    const t0 = Date.now();
    assert.equal(await store.quarantine(digest, 'hash mismatch\nsecond line'), true);
    assert.equal(await store.stat(digest), null);
    await assert.rejects(store.open(digest), isCode('artifact-missing'));
    await assert.rejects(store.read(digest), isCode('artifact-missing'));
    const [q, ...more] = await store.listQuarantined();
    assert.deepEqual(more, []);
    assert.equal(q!.digest, digest);
    assert.equal(q!.reason, 'hash mismatch second line', 'one line, fit for a log');
    assert.ok(q!.since >= t0 && q!.since <= Date.now());
    assert.deepEqual(await readFile(join(root, 'quarantine', digest)), bytes, 'the damaged copy is kept for inspection');
    assert.deepEqual(await artifacts(root), []);

    // A rebuild produces the same digest: the put must store it again, not treat it as known.
    assert.deepEqual(await store.putBytes(bytes), { digest, size: bytes.length });
    assert.deepEqual(await store.read(digest), bytes);
    assert.deepEqual(await store.listQuarantined(), []);
    assert.deepEqual(await readdir(join(root, 'quarantine')), []);
    // And through putFile.
    await store.quarantine(digest, 'again');
    const src = join(dir, 'rebuilt');
    await writeFile(src, bytes);
    assert.deepEqual(await store.putFile(src, digest), { digest, size: bytes.length });
    assert.deepEqual(await store.read(digest), bytes);
    assert.deepEqual(await store.listQuarantined(), []);
  });
});

test('a copy restored by hand under its digest ends its quarantine', async () => {
  await withDir(async (dir) => {
    const store = new LocalArtifactStore(join(dir, 'store'));
    const bytes = Buffer.from('restored from backup');
    const { digest } = await store.putBytes(bytes);
    await store.quarantine(digest, 'overwritten');
    assert.equal((await store.listQuarantined()).length, 1);
    await writeFile(store.localPath(digest), bytes, { mode: 0o444 });
    assert.deepEqual(await store.listQuarantined(), []);
    assert.deepEqual(await store.read(digest), bytes);
  });
});

test('a stored copy of the wrong size is replaced by a put of verified bytes', async () => {
  await withDir(async (dir) => {
    const root = join(dir, 'store');
    const store = new LocalArtifactStore(root);
    const bytes = Buffer.alloc(3 << 20, 9);
    const src = join(dir, 'pack');
    await writeFile(src, bytes);
    const { digest } = await store.putFile(src);
    await truncate(store.localPath(digest), 1000);
    await writeFile(src, bytes);
    assert.deepEqual(await store.putFile(src), { digest, size: bytes.length });
    assert.deepEqual(await store.read(digest), bytes);
    assert.equal((await stat(store.localPath(digest))).mode & 0o777, 0o444);
    // The same through putBytes, for small artifacts such as manifests.
    const small = Buffer.from('{"manifest":true}');
    const m = await store.putBytes(small);
    await truncate(store.localPath(m.digest), 3);
    assert.deepEqual(await store.putBytes(small), m);
    assert.deepEqual(await store.read(m.digest), small);
    assert.deepEqual(await store.listQuarantined(), [], 'replaced, so no longer quarantined');
    assert.deepEqual(await readdir(join(root, 'tmp')), []);
  });
});

test('a directory or FIFO at an artifact path reads as absent, does not hang or crash, and a put replaces it', async () => {
  await withDir(async (dir) => {
    const root = join(dir, 'store');
    const store = new LocalArtifactStore(root);
    const bytes = Buffer.from('chunk');
    const { digest } = await store.putBytes(bytes);
    const path = store.localPath(digest);
    await rm(path);
    await mkdir(path);
    await writeFile(join(path, 'inside'), 'x');
    await assert.rejects(store.read(digest), isCode('artifact-missing'));
    await assert.rejects(store.open(digest), isCode('artifact-missing'));
    assert.equal(await store.stat(digest), null);
    assert.deepEqual((await store.listQuarantined()).map((q) => q.reason), ['not a regular file']);
    assert.deepEqual(await store.putBytes(bytes), { digest, size: bytes.length });
    assert.deepEqual(await store.read(digest), bytes);

    // A directory put back in the file's place before a put: the put moves it aside.
    await rm(path);
    await mkdir(path);
    const src = join(dir, 'again');
    await writeFile(src, bytes);
    assert.deepEqual(await store.putFile(src, digest), { digest, size: bytes.length });
    assert.deepEqual(await store.read(digest), bytes);

    await rm(path);
    const mk = spawnSync('mkfifo', [path]);
    if (mk.status !== 0) return; // no mkfifo here
    await assert.rejects(store.read(digest), isCode('artifact-missing'));
    assert.equal(await store.stat(digest), null);
  });
});

test('concurrent quarantines of one artifact: one moves it, none loses the moved copy', async () => {
  await withDir(async (dir) => {
    const root = join(dir, 'store');
    const store = new LocalArtifactStore(root);
    const other = new LocalArtifactStore(root);
    for (let i = 0; i < 20; i++) {
      const bytes = Buffer.from(`artifact ${i}`);
      const { digest } = await store.putBytes(bytes);
      const moved = await Promise.all([store.quarantine(digest, 'a'), other.quarantine(digest, 'b'), store.quarantine(digest, 'c')]);
      assert.equal(moved.filter(Boolean).length, 1, `round ${i}`);
      assert.deepEqual(await readFile(join(root, 'quarantine', digest)), bytes, `round ${i}`);
      assert.ok((await store.listQuarantined()).some((q) => q.digest === digest), `round ${i}`);
    }
  });
});
