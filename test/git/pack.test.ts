import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { objectSpans, parseIdx } from '../../src/git/idx.js';
import {
  OBJ_BLOB,
  OBJ_COMMIT,
  OBJ_OFS_DELTA,
  OBJ_REF_DELTA,
  OBJ_TAG,
  OBJ_TREE,
  blobOid,
  inflateObject,
  objectOid,
  packTrailer,
  parseObjectHeader,
  parsePackHeader,
} from '../../src/git/pack.js';
import { SnapError } from '../../src/util/errors.js';
import { git, gitText, initRepo, noise, packFiles, tempRoot, writeFiles } from './helpers.js';

const root = tempRoot('git-pack');
const isInvalid = (e: unknown) => e instanceof SnapError && e.code === 'invalid';
const TYPES: Record<string, number> = { commit: OBJ_COMMIT, tree: OBJ_TREE, blob: OBJ_BLOB, tag: OBJ_TAG };

/** Every object of the repository: oid -> { type, data }, from git cat-file --batch. */
function catAll(repo: string, oids: string[]): Map<string, { type: string; data: Buffer }> {
  const out = git(repo, ['cat-file', '--batch'], { input: oids.join('\n') + '\n' });
  const objects = new Map<string, { type: string; data: Buffer }>();
  let o = 0;
  while (o < out.length) {
    const nl = out.indexOf(0x0a, o);
    const [oid, type, size] = out.toString('latin1', o, nl).split(' ');
    const data = out.subarray(nl + 1, nl + 1 + Number(size));
    objects.set(oid!, { type: type!, data: Buffer.from(data) });
    o = nl + 1 + Number(size) + 1;
  }
  return objects;
}

/** pack-objects output base name -> the .pack and .idx paths. */
function packObjects(repo: string, oids: string[], args: string[], name: string): { pack: string; idx: string } {
  const base = path.join(root, name);
  const hash = gitText(repo, ['pack-objects', '-q', ...args, base], { input: oids.join('\n') + '\n' });
  return { pack: `${base}-${hash}.pack`, idx: `${base}-${hash}.idx` };
}

test('every object of a pack-objects pack inflates to what git has', () => {
  const repo = initRepo(root, 'whole');
  writeFiles(repo, {
    'hello.txt': 'hello\n',
    'empty': '',
    'bin/noise.dat': noise(70_000, 42),
    'bin/small.dat': noise(15, 7),
    'text/long.txt': 'a line of text that repeats\n'.repeat(5000),
  });
  fs.symlinkSync('hello.txt', path.join(repo, 'link'));
  git(repo, ['add', '-A']);
  git(repo, ['commit', '-q', '-m', 'first']);
  writeFiles(repo, { 'hello.txt': 'hello again\n' });
  git(repo, ['commit', '-q', '-a', '-m', 'second\n\nwith a body']);
  git(repo, ['tag', '-a', '-m', 'release', 'v1']);

  const oids = gitText(repo, ['rev-list', '--objects', '--all']).split('\n').map((l) => l.slice(0, 40));
  const want = catAll(repo, oids);
  const { pack, idx: idxPath } = packObjects(repo, oids, ['--window=0', '--no-reuse-delta'], 'whole');
  const packBuf = fs.readFileSync(pack);
  const idx = parseIdx(fs.readFileSync(idxPath));

  assert.deepEqual(parsePackHeader(packBuf), { version: 2, objects: oids.length });
  assert.deepEqual(packTrailer(packBuf), createHash('sha1').update(packBuf.subarray(0, packBuf.length - 20)).digest());
  assert.deepEqual(packTrailer(packBuf), idx.packChecksum);

  const spans = objectSpans(idx, packBuf.length);
  assert.equal(spans.length, oids.length);
  const seen = new Set<string>();
  for (const s of spans) {
    const slice = packBuf.subarray(s.offset, s.offset + s.length);
    assert.equal(crc32(slice), s.crc32, `crc of ${s.oid}`);
    const expected = want.get(s.oid);
    assert.ok(expected, `${s.oid} is one of the packed objects`);
    const h = parseObjectHeader(packBuf, s.offset);
    assert.equal(h.type, TYPES[expected.type]);
    assert.equal(h.size, expected.data.length);
    const { type, data } = inflateObject(slice, expected.data.length);
    assert.equal(type, TYPES[expected.type]);
    assert.deepEqual(data, expected.data);
    assert.equal(objectOid(type, data).toString('hex'), s.oid);
    assert.equal(objectOid(expected.type as 'blob', data).toString('hex'), s.oid);
    if (type === OBJ_BLOB) assert.equal(blobOid(data).toString('hex'), s.oid);
    seen.add(s.oid);
  }
  assert.equal(seen.size, want.size);
  assert.deepEqual(
    [...new Set([...want.values()].map((o) => o.type))].sort(),
    ['blob', 'commit', 'tag', 'tree'],
  );
  assert.equal(blobOid(Buffer.alloc(0)).toString('hex'), gitText(repo, ['hash-object', '--stdin'], { input: '' }));
});

test('delta objects are refused (ofs-delta and ref-delta)', () => {
  const repo = initRepo(root, 'delta');
  const big = noise(200_000, 9);
  const similar = Buffer.from(big);
  similar.write('a small change in the middle', 100_000);
  writeFiles(repo, { 'one.bin': big, 'two.bin': similar });
  git(repo, ['add', '-A']);
  git(repo, ['commit', '-q', '-m', 'two similar blobs']);
  const oids = gitText(repo, ['rev-list', '--objects', '--all']).split('\n').map((l) => l.slice(0, 40));

  // repack passes --delta-base-offset (ofs-delta); plain pack-objects writes ref-delta.
  git(repo, ['repack', '-a', '-d', '-f', '-q', '--window=10']);
  const ofs = packFiles(repo)[0]!;
  const ref = packObjects(repo, oids, ['--window=10'], 'ref');

  for (const [p, deltaType] of [
    [ofs, OBJ_OFS_DELTA],
    [ref, OBJ_REF_DELTA],
  ] as const) {
    const packBuf = fs.readFileSync(p.pack);
    const spans = objectSpans(parseIdx(fs.readFileSync(p.idx)), packBuf.length);
    const deltas = spans.filter((s) => parseObjectHeader(packBuf, s.offset).type === deltaType);
    assert.equal(deltas.length, 1, 'one blob is stored as a delta of the other');
    const slice = packBuf.subarray(deltas[0]!.offset, deltas[0]!.offset + deltas[0]!.length);
    assert.ok(slice.length < 1000, 'and it is small');
    assert.throws(() => inflateObject(slice), isInvalid);
    // The whole objects of the same pack still inflate.
    for (const s of spans.filter((s) => s !== deltas[0])) {
      const { type, data } = inflateObject(packBuf.subarray(s.offset, s.offset + s.length));
      assert.equal(objectOid(type, data).toString('hex'), s.oid);
    }
  }
});

/** The object header git writes for (type, size). */
function encodeHeader(type: number, size: number): Buffer {
  const bytes = [(type << 4) | (size % 16)];
  size = Math.floor(size / 16);
  while (size > 0) {
    bytes[bytes.length - 1]! |= 0x80;
    bytes.push(size % 128);
    size = Math.floor(size / 128);
  }
  return Buffer.from(bytes);
}

test('parseObjectHeader decodes sizes up to 2^53 - 1', () => {
  for (const size of [0, 1, 15, 16, 127, 128, 2047, 2048, 2 ** 31, 2 ** 32 + 5, 2 ** 45 + 3, Number.MAX_SAFE_INTEGER]) {
    for (const type of [1, 2, 3, 4, 6, 7]) {
      const h = encodeHeader(type, size);
      const buf = Buffer.concat([Buffer.from([0xee]), h, Buffer.from([0x78])]);
      assert.deepEqual(parseObjectHeader(buf, 1), { type, size, headerLength: h.length });
    }
  }
  assert.equal(encodeHeader(3, Number.MAX_SAFE_INTEGER).length, 8);
});

test('parseObjectHeader rejects bad headers', () => {
  const bad: [string, Buffer, number][] = [
    ['type 0', Buffer.from([0x05]), 0],
    ['type 5', Buffer.from([0x55]), 0],
    ['truncated', Buffer.from([0xb5, 0x80]), 0],
    ['empty', Buffer.alloc(0), 0],
    ['past the end', Buffer.from([0x35]), 1],
    ['negative position', Buffer.from([0x35]), -1],
    ['11-byte header', Buffer.from([0xb0, ...Array(9).fill(0x80), 0x00]), 0],
    // 2^53: low nibble 0, then seven 7-bit groups (bits 4..52) of 0, then bit 53 in the 9th byte.
    ['size 2^53', Buffer.from([0xb0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), 0],
    ['size beyond 2^53', Buffer.from([0xbf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]), 0],
  ];
  for (const [name, buf, at] of bad) assert.throws(() => parseObjectHeader(buf, at), isInvalid, name);
  // A 10-byte header with a small value is fine (git never writes one, but it is well formed).
  assert.deepEqual(parseObjectHeader(Buffer.from([0xb1, ...Array(8).fill(0x80), 0x00]), 0), {
    type: 3,
    size: 1,
    headerLength: 10,
  });
});

test('inflateObject checks sizes and the slice boundary', () => {
  const data = Buffer.from('some blob content\n');
  const z = deflateSync(data);
  const obj = (size: number, body = z) => Buffer.concat([encodeHeader(OBJ_BLOB, size), body]);
  assert.deepEqual(inflateObject(obj(data.length)), { type: OBJ_BLOB, data });
  assert.deepEqual(inflateObject(obj(data.length), data.length).data, data);
  assert.deepEqual(inflateObject(obj(0, deflateSync(Buffer.alloc(0))), 0), { type: OBJ_BLOB, data: Buffer.alloc(0) });

  assert.throws(() => inflateObject(obj(data.length), data.length + 1), isInvalid, 'caller expects another size');
  assert.throws(() => inflateObject(obj(data.length - 1)), isInvalid, 'inflates to more than the header says');
  assert.throws(() => inflateObject(obj(data.length + 1)), isInvalid, 'inflates to less than the header says');
  assert.throws(() => inflateObject(obj(0)), isInvalid, 'header says empty');
  assert.throws(() => inflateObject(obj(data.length, z.subarray(0, z.length - 1))), isInvalid, 'truncated stream');
  assert.throws(() => inflateObject(obj(data.length, Buffer.concat([z, Buffer.from([0])]))), isInvalid, 'trailing bytes');
  assert.throws(() => inflateObject(obj(data.length, Buffer.from('not zlib at all'))), isInvalid, 'not zlib');
  const corrupt = Buffer.from(z);
  corrupt[corrupt.length - 1]! ^= 1; // adler-32
  assert.throws(() => inflateObject(obj(data.length, corrupt)), isInvalid, 'bad adler-32');
  const bomb = Buffer.concat([encodeHeader(OBJ_BLOB, 10), deflateSync(Buffer.alloc(50_000_000))]);
  assert.throws(() => inflateObject(bomb), isInvalid, 'a lying header cannot make it inflate without bound');
});

test('pack header and trailer checks', () => {
  const header = (magic: string, version: number, n: number) => {
    const b = Buffer.alloc(32);
    b.write(magic, 0, 'latin1');
    b.writeUInt32BE(version, 4);
    b.writeUInt32BE(n, 8);
    return b;
  };
  assert.deepEqual(parsePackHeader(header('PACK', 2, 5)), { version: 2, objects: 5 });
  assert.deepEqual(parsePackHeader(header('PACK', 3, 0xffffffff)), { version: 3, objects: 0xffffffff });
  assert.throws(() => parsePackHeader(header('PACX', 2, 5)), isInvalid);
  assert.throws(() => parsePackHeader(header('PACK', 4, 5)), isInvalid);
  assert.throws(() => parsePackHeader(header('PACK', 1, 5)), isInvalid);
  assert.throws(() => parsePackHeader(header('PACK', 2, 5).subarray(0, 11)), isInvalid);
  assert.throws(() => packTrailer(Buffer.alloc(31)), isInvalid);
  assert.throws(() => objectOid(5, Buffer.alloc(0)), isInvalid);
  assert.throws(() => objectOid(OBJ_OFS_DELTA, Buffer.alloc(0)), isInvalid);
});
