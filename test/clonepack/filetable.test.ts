import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeTable,
  encodeTable,
  FLAG_CONVERTED,
  hasContent,
  isConverted,
  MODE_EXEC,
  MODE_FILE,
  MODE_GITLINK,
  MODE_SYMLINK,
  NO_PACK,
  type TableEntry,
} from '../../src/clonepack/filetable.js';
import { SnapError } from '../../src/util/errors.js';

const HEADER = 12;
const FIXED = 57;

function isInvalid(err: unknown): boolean {
  return err instanceof SnapError && err.code === 'invalid';
}

function oidOf(n: number): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt32BE(n, 16);
  b[0] = 0xab;
  return b;
}

let serial = 0;
/** An entry with a pack location in pack 0 (so tables decode with packCount >= 1). */
function entry(path: string | Buffer, opts: Partial<TableEntry> = {}): TableEntry {
  const mode = opts.mode ?? MODE_FILE;
  const gitlink = mode === MODE_GITLINK;
  return {
    path: typeof path === 'string' ? Buffer.from(path, 'utf8') : path,
    mode,
    oid: oidOf(++serial),
    size: gitlink ? 0 : 10,
    flags: 0,
    pack: gitlink ? NO_PACK : 0,
    packOffset: gitlink ? 0 : 12,
    packLength: gitlink ? 0 : 20,
    ...opts,
  };
}

function expectInvalid(entries: TableEntry[], packCount = 1, what = ''): void {
  const buf = encodeTable(entries);
  assert.throws(() => decodeTable(buf, entries.length, packCount), isInvalid, what || entries.map((e) => e.path.toString('latin1')).join(','));
}

function sampleTable(): TableEntry[] {
  return [
    entry('.gitattributes', { size: 0 }),
    entry('README', { size: 2 ** 32 + 5, packOffset: 2 ** 40 + 3, packLength: 2 ** 33 + 1, flags: FLAG_CONVERTED }),
    entry('bin/run', { mode: MODE_EXEC, size: 1234, pack: 1 }),
    entry('lib', { mode: MODE_SYMLINK, size: 3 }),
    entry(Buffer.from([0x6e, 0xff, 0xfe, 0x80, 0x2f, 0xc3, 0x28]), { size: 7 }), // "n\xff\xfe\x80/\xc3(": not UTF-8
    entry('sub', { mode: MODE_GITLINK }),
    entry('zz/\u00e9t\u00e9.txt', { size: 4096, mode: MODE_SYMLINK }),
  ];
}

test('encodeTable -> decodeTable round trip keeps every field', () => {
  const entries = sampleTable();
  const buf = encodeTable(entries);
  assert.equal(buf.length, HEADER + entries.reduce((a, e) => a + FIXED + e.path.length, 0));
  assert.equal(buf.subarray(0, 4).toString('latin1'), 'SCFT');
  assert.equal(buf.readUInt32LE(4), 1);
  assert.equal(buf.readUInt32LE(8), entries.length);
  const back = decodeTable(buf, entries.length, 2);
  assert.deepEqual(back, entries);
  // Non-UTF-8 path bytes survive unchanged.
  assert.deepEqual(back[4]!.path, Buffer.from([0x6e, 0xff, 0xfe, 0x80, 0x2f, 0xc3, 0x28]));
  assert.equal(back[1]!.size, 2 ** 32 + 5);
  assert.equal(back[1]!.packOffset, 2 ** 40 + 3);
  assert.equal(back[1]!.packLength, 2 ** 33 + 1);
  assert.deepEqual(
    back.map((e) => e.mode),
    [MODE_FILE, MODE_FILE, MODE_EXEC, MODE_SYMLINK, MODE_FILE, MODE_GITLINK, MODE_SYMLINK],
  );
  assert.deepEqual(back.map(isConverted), [false, true, false, false, false, false, false]);
  assert.deepEqual(back.map(hasContent), [true, true, true, true, true, false, true]);
  // Decoded entries do not alias the input buffer.
  buf.fill(0);
  assert.deepEqual(back, entries);
});

test('byte layout of one entry is as documented', () => {
  const e = entry('ab', { mode: MODE_EXEC, size: 0x0102030405, flags: 1, pack: 7, packOffset: 0x0a0b0c0d0e, packLength: 0x33, oid: Buffer.alloc(20, 0x11) });
  const buf = encodeTable([e]);
  const expected = Buffer.concat([
    Buffer.from('SCFT', 'latin1'),
    Buffer.from([1, 0, 0, 0, 1, 0, 0, 0]),
    Buffer.from([0xed, 0x81, 0x00, 0x00]), // 0o100755 = 0x81ed
    Buffer.alloc(20, 0x11),
    Buffer.from([0x05, 0x04, 0x03, 0x02, 0x01, 0, 0, 0]),
    Buffer.from([1]),
    Buffer.from([7, 0, 0, 0]),
    Buffer.from([0x0e, 0x0d, 0x0c, 0x0b, 0x0a, 0, 0, 0]),
    Buffer.from([0x33, 0, 0, 0, 0, 0, 0, 0]),
    Buffer.from([2, 0, 0, 0]),
    Buffer.from('ab'),
  ]);
  assert.deepEqual(buf, expected);
  assert.deepEqual(decodeTable(buf, 1, 8), [e]);
});

test('an empty table round-trips', () => {
  const buf = encodeTable([]);
  assert.equal(buf.length, HEADER);
  assert.deepEqual(decodeTable(buf, 0, 0), []);
  assert.deepEqual(decodeTable(buf, 0, 3), []);
});

test('entries without pack locations are fine only when there are no HEAD packs', () => {
  const entries = [entry('a', { pack: NO_PACK, packOffset: 0, packLength: 0 })];
  assert.deepEqual(decodeTable(encodeTable(entries), 1, 0), entries);
  expectInvalid(entries, 1, 'NO_PACK with a HEAD pack');
});

test('decodeTable rejects bad magic and version', () => {
  const buf = encodeTable(sampleTable());
  const badMagic = Buffer.from(buf);
  badMagic.write('SCFX', 0, 'latin1');
  assert.throws(() => decodeTable(badMagic, 7, 2), isInvalid);
  for (const v of [0, 2, 0xffffffff]) {
    const badVersion = Buffer.from(buf);
    badVersion.writeUInt32LE(v, 4);
    assert.throws(() => decodeTable(badVersion, 7, 2), isInvalid, `version ${v}`);
  }
});

test('decodeTable rejects a count that differs from the manifest', () => {
  const buf = encodeTable(sampleTable());
  assert.throws(() => decodeTable(buf, 6, 2), isInvalid);
  assert.throws(() => decodeTable(buf, 8, 2), isInvalid);
  // The header's count disagrees with the entries actually present.
  const more = Buffer.from(buf);
  more.writeUInt32LE(8, 8);
  assert.throws(() => decodeTable(more, 8, 2), isInvalid);
  const fewer = Buffer.from(buf);
  fewer.writeUInt32LE(6, 8);
  assert.throws(() => decodeTable(fewer, 6, 2), isInvalid); // leaves trailing bytes
  // An impossible count is refused before allocating anything.
  const huge = Buffer.from(buf);
  huge.writeUInt32LE(0xffffffff, 8);
  assert.throws(() => decodeTable(huge, 0xffffffff, 2), isInvalid);
});

test('decodeTable rejects a table truncated at every byte boundary', () => {
  const entries = [entry('a', { size: 3 }), entry('b/c', { mode: MODE_SYMLINK, size: 1 }), entry('d', { mode: MODE_GITLINK })];
  const buf = encodeTable(entries);
  assert.deepEqual(decodeTable(buf, 3, 1), entries);
  for (let n = 0; n < buf.length; n++) {
    assert.throws(() => decodeTable(buf.subarray(0, n), 3, 1), isInvalid, `truncated to ${n} of ${buf.length} bytes`);
  }
});

test('decodeTable rejects trailing bytes', () => {
  const buf = encodeTable([entry('a')]);
  for (const extra of [Buffer.from([0]), Buffer.alloc(FIXED + 1)]) {
    assert.throws(() => decodeTable(Buffer.concat([buf, extra]), 1, 1), isInvalid);
  }
});

test('decodeTable rejects unsorted and duplicate paths, accepts git index order', () => {
  expectInvalid([entry('b'), entry('a')]);
  expectInvalid([entry('a'), entry('a')]);
  expectInvalid([entry('a/b'), entry('a-b')]);
  expectInvalid([entry('a', { mode: MODE_GITLINK }), entry('a', { mode: MODE_GITLINK })]);
  // Byte order: '-' (0x2d) < '/' (0x2f) < '0' (0x30), and bytes >= 0x80 sort after ASCII.
  const ok = [entry('a-b'), entry('a/b'), entry('a0'), entry('B'), entry(Buffer.from([0x61, 0x80])), entry(Buffer.from([0xc3, 0xa9]))];
  ok.sort((x, y) => Buffer.compare(x.path, y.path));
  assert.deepEqual(
    ok.map((e) => e.path.toString('latin1')),
    ['B', 'a-b', 'a/b', 'a0', 'a\x80', '\xc3\xa9'],
  );
  assert.deepEqual(decodeTable(encodeTable(ok), ok.length, 1), ok);
});

test('decodeTable rejects unsafe paths', () => {
  const bad: (string | Buffer)[] = [
    '',
    '..',
    '.',
    '../escape',
    'a/../b',
    'a/..',
    'a/./b',
    './a',
    'a//b',
    '/abs',
    '/',
    'a/',
    Buffer.from('a\0b', 'latin1'),
    Buffer.from([0]),
    '.git',
    '.GIT',
    '.Git',
    '.git/config',
    'a/.Git/b',
    'a/.gIt',
    'x'.repeat(4097),
  ];
  for (const p of bad) {
    const e = entry(p);
    expectInvalid([e], 1, `path ${JSON.stringify(e.path.toString('latin1').slice(0, 40))}`);
    // Also when preceded by a valid entry (the check is not only for the first one).
    if (e.path.length && Buffer.compare(Buffer.from('!'), e.path) < 0) expectInvalid([entry('!'), e], 1, `second path ${JSON.stringify(p)}`);
  }
  // Look-alikes that are fine.
  const fine = ['.gitattributes', '.gitignore', '.git2', 'a.git', 'a/.git-x/b', '...', '..a', 'a..', '.a', 'x'.repeat(4096)].map((p) => entry(p));
  fine.sort((x, y) => Buffer.compare(x.path, y.path));
  assert.equal(decodeTable(encodeTable(fine), fine.length, 1).length, fine.length);
});

test('decodeTable rejects modes other than 100644/100755/120000/160000', () => {
  for (const mode of [0o100664, 0o040000, 0o100600, 0o100744, 0o120777, 0o160644, 0, 0o644, 0xffffffff]) {
    expectInvalid([entry('a', { mode })], 1, `mode ${mode.toString(8)}`);
  }
});

test('decodeTable rejects unknown flags', () => {
  for (const flags of [2, 3, 0x80, 0xff]) expectInvalid([entry('a', { flags })], 1, `flags ${flags}`);
});

test('decodeTable rejects a gitlink that carries content', () => {
  expectInvalid([entry('g', { mode: MODE_GITLINK, size: 1 })], 1, 'size');
  expectInvalid([entry('g', { mode: MODE_GITLINK, flags: FLAG_CONVERTED })], 1, 'converted');
  expectInvalid([entry('g', { mode: MODE_GITLINK, pack: 0, packLength: 10 })], 1, 'pack');
  // Without a pack location a gitlink is fine, with or without HEAD packs.
  const ok = [entry('g', { mode: MODE_GITLINK })];
  assert.deepEqual(decodeTable(encodeTable(ok), 1, 0), ok);
  assert.deepEqual(decodeTable(encodeTable(ok), 1, 5), ok);
});

test('decodeTable rejects a pack index out of range and empty pack slices', () => {
  expectInvalid([entry('a', { pack: 1 })], 1, 'pack 1 of 1');
  expectInvalid([entry('a', { pack: 5 })], 5, 'pack 5 of 5');
  expectInvalid([entry('a', { pack: 0 })], 0, 'pack 0 of 0');
  expectInvalid([entry('a', { packLength: 0 })], 1, 'packLength 0');
  expectInvalid([entry('a', { packLength: 1 })], 1, 'packLength 1');
  assert.equal(decodeTable(encodeTable([entry('a', { pack: 4 })]), 1, 5).length, 1);
});

test('decodeTable rejects sizes and offsets beyond 2^53', () => {
  expectInvalid([entry('a', { size: 2 ** 53 })], 1, 'size');
  expectInvalid([entry('a', { packOffset: 2 ** 53 })], 1, 'packOffset');
  expectInvalid([entry('a', { packLength: 2 ** 60 })], 1, 'packLength');
  const buf = encodeTable([entry('a')]);
  buf.fill(0xff, HEADER + 24, HEADER + 32); // size = 2^64 - 1
  assert.throws(() => decodeTable(buf, 1, 1), isInvalid);
  const max = [entry('a', { size: Number.MAX_SAFE_INTEGER, packOffset: Number.MAX_SAFE_INTEGER })];
  assert.deepEqual(decodeTable(encodeTable(max), 1, 1), max);
});

test('decodeTable rejects an entry below a symlink, file or gitlink entry', () => {
  expectInvalid([entry('a', { mode: MODE_SYMLINK, size: 3 }), entry('a/b')], 1, 'below symlink');
  expectInvalid([entry('a'), entry('a/b')], 1, 'below file');
  expectInvalid([entry('a', { mode: MODE_EXEC }), entry('a/b/c/d')], 1, 'deep below exec file');
  expectInvalid([entry('a', { mode: MODE_GITLINK }), entry('a/b')], 1, 'below gitlink');
  expectInvalid([entry('link', { mode: MODE_SYMLINK, size: 4 }), entry('link-other'), entry('link/x')], 1, 'with an entry between');
  // A shared prefix that is not a path component is fine.
  const ok = [entry('a', { mode: MODE_SYMLINK, size: 1 }), entry('a-b/c'), entry('ab/c')];
  assert.equal(decodeTable(encodeTable(ok), 3, 1).length, 3);
});

test('decodeTable rejects a symlink target over 4096 bytes', () => {
  expectInvalid([entry('l', { mode: MODE_SYMLINK, size: 4097 })], 1, 'symlink 4097');
  assert.equal(decodeTable(encodeTable([entry('l', { mode: MODE_SYMLINK, size: 4096 })]), 1, 1).length, 1);
  // Regular files may be large.
  assert.equal(decodeTable(encodeTable([entry('f', { size: 2 ** 40 })]), 1, 1)[0]!.size, 2 ** 40);
});

test('decodeTable errors are SnapErrors even for a corrupt path length', () => {
  const buf = encodeTable([entry('abc')]);
  buf.writeUInt32LE(0xffffffff, HEADER + 53);
  assert.throws(() => decodeTable(buf, 1, 1), isInvalid);
  buf.writeUInt32LE(4, HEADER + 53);
  assert.throws(() => decodeTable(buf, 1, 1), isInvalid);
  buf.writeUInt32LE(2, HEADER + 53);
  assert.throws(() => decodeTable(buf, 1, 1), isInvalid);
});
