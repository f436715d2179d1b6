import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { findOid, objectSpans, parseIdx } from '../../src/git/idx.js';
import { SnapError } from '../../src/util/errors.js';
import { git, gitText, initRepo, noise, packFiles, tempRoot, writeFiles } from './helpers.js';

const root = tempRoot('git-idx');

const isInvalid = (e: unknown) => e instanceof SnapError && e.code === 'invalid';

/** Recompute the trailing SHA-1 after tampering, so the check under test is the one that fires. */
function reseal(buf: Buffer): Buffer {
  const out = Buffer.from(buf);
  createHash('sha1').update(out.subarray(0, out.length - 20)).digest().copy(out, out.length - 20);
  return out;
}

interface ShowIndexLine {
  offset: number;
  oid: string;
  crc: number;
}

function showIndex(cwd: string, idxPath: string): ShowIndexLine[] {
  const out = gitText(cwd, ['show-index'], { input: fs.readFileSync(idxPath) });
  return out.split('\n').map((line) => {
    const m = /^(\d+) ([0-9a-f]{40}) \(([0-9a-f]{8})\)$/.exec(line);
    assert.ok(m, `unexpected show-index line ${line}`);
    return { offset: Number(m[1]), oid: m[2]!, crc: parseInt(m[3]!, 16) };
  });
}

function makeRepo(): { repo: string; pack: string; idx: string } {
  const repo = initRepo(root, 'repo');
  for (let c = 0; c < 4; c++) {
    writeFiles(repo, {
      'README.md': `version ${c}\n`,
      [`dir${c}/data.bin`]: noise(3000 + c * 500, c + 1),
      'shared/a.txt': 'same content every commit\n',
      'shared/b.txt': `b ${c}\n`.repeat(50),
    });
    git(repo, ['add', '-A']);
    git(repo, ['commit', '-q', '-m', `commit ${c}`]);
  }
  git(repo, ['tag', '-a', '-m', 'annotated', 'v1']);
  git(repo, ['repack', '-a', '-d', '-q']);
  const packs = packFiles(repo);
  assert.equal(packs.length, 1);
  return { repo, ...packs[0]! };
}

const { repo, pack, idx: idxPath } = makeRepo();
const idxBuf = fs.readFileSync(idxPath);
const packBuf = fs.readFileSync(pack);

test('parseIdx matches git show-index', () => {
  const idx = parseIdx(idxBuf);
  const lines = showIndex(repo, idxPath);
  assert.equal(idx.count, lines.length);
  assert.equal(idx.oids.length, idx.count * 20);
  assert.equal(idx.crc32.length, idx.count * 4);
  lines.forEach((l, i) => {
    assert.equal(idx.oids.subarray(i * 20, i * 20 + 20).toString('hex'), l.oid);
    assert.equal(idx.offsets[i], l.offset);
    assert.equal(idx.crc32.readUInt32BE(i * 4), l.crc);
  });
  assert.deepEqual(idx.packChecksum, packBuf.subarray(packBuf.length - 20));
  assert.deepEqual(idx.idxChecksum, createHash('sha1').update(idxBuf.subarray(0, idxBuf.length - 20)).digest());
});

test('objectSpans matches git verify-pack -v offsets and packed sizes', () => {
  const idx = parseIdx(idxBuf);
  const spans = objectSpans(idx, packBuf.length);
  const verify = new Map<string, { offset: number; packed: number }>();
  for (const line of gitText(repo, ['verify-pack', '-v', pack]).split('\n')) {
    const m = /^([0-9a-f]{40}) +\w+ +\d+ +(\d+) +(\d+)/.exec(line);
    if (m) verify.set(m[1]!, { packed: Number(m[2]), offset: Number(m[3]) });
  }
  assert.equal(spans.length, verify.size);
  let prevEnd = 12;
  for (const s of spans) {
    assert.deepEqual({ offset: s.offset, packed: s.length }, verify.get(s.oid), s.oid);
    assert.equal(s.offset, prevEnd, 'objects are back to back');
    prevEnd = s.offset + s.length;
  }
  assert.equal(prevEnd, packBuf.length - 20);
});

test('findOid locates every object and misses absent ones', () => {
  const idx = parseIdx(idxBuf);
  for (let i = 0; i < idx.count; i++) assert.equal(findOid(idx, idx.oids.subarray(i * 20, i * 20 + 20)), i);
  assert.equal(findOid(idx, Buffer.alloc(20, 0)), -1);
  assert.equal(findOid(idx, Buffer.alloc(20, 0xff)), -1);
});

test('64-bit offset table as git index-pack writes it', () => {
  const plain = parseIdx(idxBuf);
  // index-pack --index-version=2,<limit> puts every offset above <limit> in the 64-bit table.
  for (const limit of ['0', '0x100']) {
    const out = path.join(root, `large-${limit}.idx`);
    git(repo, ['index-pack', `--index-version=2,${limit}`, '-o', out, pack]);
    const buf = fs.readFileSync(out);
    const idx = parseIdx(buf);
    const large = plain.offsets.filter((o) => o > Number(limit)).length;
    assert.equal(buf.length, idxBuf.length + large * 8, 'large table present');
    assert.deepEqual(idx.oids, plain.oids);
    assert.deepEqual(idx.offsets, plain.offsets);
    assert.deepEqual(idx.crc32, plain.crc32);
    assert.deepEqual(showIndex(repo, out).map((l) => l.offset), idx.offsets);
  }
});

/** A hand-built index, for offsets no test pack can reach. */
function buildIdx(objects: { oid: Buffer; offset: number; crc: number }[], packChecksum: Buffer): Buffer {
  const sorted = [...objects].sort((a, b) => Buffer.compare(a.oid, b.oid));
  const fanout = Buffer.alloc(1024);
  for (let b = 0; b < 256; b++) fanout.writeUInt32BE(sorted.filter((o) => o.oid[0]! <= b).length, b * 4);
  const crcs = Buffer.alloc(sorted.length * 4);
  const offs = Buffer.alloc(sorted.length * 4);
  const large: Buffer[] = [];
  sorted.forEach((o, i) => {
    crcs.writeUInt32BE(o.crc, i * 4);
    if (o.offset < 0x80000000) {
      offs.writeUInt32BE(o.offset, i * 4);
    } else {
      offs.writeUInt32BE(0x80000000 + large.length, i * 4);
      const l = Buffer.alloc(8);
      l.writeUInt32BE(Math.floor(o.offset / 2 ** 32), 0);
      l.writeUInt32BE(o.offset % 2 ** 32, 4);
      large.push(l);
    }
  });
  const body = Buffer.concat([
    Buffer.from([0xff, 0x74, 0x4f, 0x63, 0, 0, 0, 2]),
    fanout,
    ...sorted.map((o) => o.oid),
    crcs,
    offs,
    ...large,
    packChecksum,
    Buffer.alloc(20),
  ]);
  return reseal(body);
}

test('64-bit offsets beyond 4 GiB (handcrafted)', () => {
  const offsets = [12, 0x7fffff00, 2 ** 31, 2 ** 32 + 7, 2 ** 40 + 3, 2 ** 52 + 1];
  const objects = offsets.map((offset, i) => ({
    oid: createHash('sha1').update(`object ${i}`).digest(),
    offset,
    crc: 0x10000000 + i,
  }));
  const idx = parseIdx(buildIdx(objects, Buffer.alloc(20, 7)));
  assert.equal(idx.count, offsets.length);
  assert.deepEqual(idx.packChecksum, Buffer.alloc(20, 7));
  for (const o of objects) {
    const i = findOid(idx, o.oid);
    assert.ok(i >= 0);
    assert.equal(idx.offsets[i], o.offset);
    assert.equal(idx.crc32.readUInt32BE(i * 4), o.crc);
  }
  const spans = objectSpans(idx, 2 ** 52 + 1 + 100 + 20);
  assert.deepEqual(
    spans.map((s) => s.offset),
    offsets,
  );
  assert.deepEqual(
    spans.map((s) => s.length),
    [0x7fffff00 - 12, 0x100, 2 ** 31 + 7, 2 ** 40 - 2 ** 32 - 4, 2 ** 52 - 2 ** 40 - 2, 100],
  );
  assert.deepEqual(
    spans.map((s) => s.oid),
    objects.map((o) => o.oid.toString('hex')),
  );
});

test('offsets beyond 2^53 are rejected', () => {
  const objects = [
    { oid: Buffer.alloc(20, 1), offset: 12, crc: 0 },
    { oid: Buffer.alloc(20, 2), offset: 2 ** 40, crc: 0 },
  ];
  const buf = buildIdx(objects, Buffer.alloc(20));
  // The large entry is the last 8 bytes before the trailer: make its high word 2^21 (offset 2^53).
  buf.writeUInt32BE(2 ** 21, buf.length - 48);
  assert.throws(() => parseIdx(reseal(buf)), isInvalid);
});

test('an empty index is valid', () => {
  const idx = parseIdx(buildIdx([], Buffer.alloc(20)));
  assert.equal(idx.count, 0);
  assert.deepEqual(objectSpans(idx, 32), []);
});

test('truncated indexes are rejected at every length', () => {
  for (let n = 0; n < idxBuf.length; n++) {
    assert.throws(() => parseIdx(idxBuf.subarray(0, n)), isInvalid, `length ${n}`);
    assert.throws(() => parseIdx(idxBuf.subarray(0, n), { verifyChecksum: false }), isInvalid, `length ${n}`);
  }
});

test('corrupt indexes are rejected', () => {
  const idx = parseIdx(idxBuf);
  const count = idx.count;
  const oidsAt = 8 + 1024;
  const offAt = oidsAt + count * 24;
  const cases: [string, (b: Buffer) => Buffer][] = [
    ['checksum', (b) => (b[b.length - 1]! ^= 1, b)],
    ['body byte', (b) => (b[oidsAt + 5]! ^= 1, b)],
    ['magic', (b) => (b[0] = 0, reseal(b))],
    ['version 1', (b) => (b.writeUInt32BE(1, 4), reseal(b))],
    ['version 3', (b) => (b.writeUInt32BE(3, 4), reseal(b))],
    ['huge count', (b) => (b.writeUInt32BE(0xffffffff, 8 + 255 * 4), reseal(b))],
    ['count one too many', (b) => (b.writeUInt32BE(count + 1, 8 + 255 * 4), reseal(b))],
    ['count one too few', (b) => (b.writeUInt32BE(count - 1, 8 + 255 * 4), reseal(b))],
    ['fanout decreases', (b) => (b.writeUInt32BE(count, 8 + 100 * 4), reseal(b))],
    ['fanout disagrees with oids', (b) => (b.fill(0, 8, 8 + 255 * 4), reseal(b))],
    ['oids out of order', (b) => (oidsSwap(b, oidsAt, 0, 1), reseal(b))],
    ['duplicate oid', (b) => (b.copy(b, oidsAt + 20, oidsAt, oidsAt + 20), reseal(b))],
    ['offset inside the pack header', (b) => (b.writeUInt32BE(4, offAt), reseal(b))],
    ['missing 64-bit entry', (b) => (b.writeUInt32BE(0x80000000, offAt), reseal(b))],
    ['stray 4 bytes', (b) => reseal(Buffer.concat([b.subarray(0, b.length - 40), Buffer.alloc(44)]))],
    ['stray 64-bit entry', (b) => reseal(Buffer.concat([b.subarray(0, b.length - 40), Buffer.alloc(48)]))],
  ];
  for (const [name, mutate] of cases) {
    assert.throws(() => parseIdx(mutate(Buffer.from(idxBuf))), isInvalid, name);
  }
  // Checksum verification can be skipped, but every structural check still runs.
  const badSum = Buffer.from(idxBuf);
  badSum[badSum.length - 1]! ^= 1;
  assert.equal(parseIdx(badSum, { verifyChecksum: false }).count, count);
});

function oidsSwap(b: Buffer, at: number, i: number, j: number): void {
  const a = Buffer.from(b.subarray(at + i * 20, at + i * 20 + 20));
  b.copy(b, at + i * 20, at + j * 20, at + j * 20 + 20);
  a.copy(b, at + j * 20);
}

test('objectSpans rejects offsets that do not fit the pack', () => {
  const idx = parseIdx(idxBuf);
  assert.throws(() => objectSpans(idx, packBuf.length - 1000), isInvalid);
  assert.throws(() => objectSpans(idx, 31), isInvalid);
  const twins = { ...idx, offsets: idx.offsets.map((o, i) => (i === 1 ? idx.offsets[0]! : o)) };
  assert.throws(() => objectSpans(twins, packBuf.length), isInvalid);
  const gap = { ...idx, offsets: idx.offsets.map((o) => o + 1) };
  assert.throws(() => objectSpans(gap, packBuf.length), isInvalid, 'first object must follow the header');
});
