import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chunkAt, chunkSpan, chunkStarts, chunksWithConverted, streamLength, streamOffsets } from '../../src/clonepack/layout.js';
import { FLAG_CONVERTED, MODE_EXEC, MODE_FILE, MODE_GITLINK, MODE_SYMLINK, NO_PACK, type TableEntry } from '../../src/clonepack/filetable.js';
import type { ChunkRef, Manifest } from '../../src/clonepack/manifest.js';

function e(path: string, size: number, opts: { mode?: number; converted?: boolean } = {}): TableEntry {
  const mode = opts.mode ?? MODE_FILE;
  return {
    path: Buffer.from(path),
    mode,
    oid: Buffer.alloc(20, 1),
    size: mode === MODE_GITLINK ? 0 : size,
    flags: opts.converted ? FLAG_CONVERTED : 0,
    pack: mode === MODE_GITLINK ? NO_PACK : 0,
    packOffset: 12,
    packLength: 10,
  };
}

function chunks(...rawSizes: number[]): ChunkRef[] {
  return rawSizes.map((rawSize, i) => ({ digest: String(i % 10).repeat(64), size: rawSize + 9, rawSize }));
}

function manifestWith(cs: ChunkRef[]): Manifest {
  return {
    format: 'snapclone.manifest',
    version: 1,
    ref: 'refs/heads/main',
    commit: 'a'.repeat(40),
    defaultBranch: 'main',
    refs: [],
    headPacks: [],
    historyPacks: [],
    table: { digest: 'f'.repeat(64), size: 1, entries: 0, rawSize: 12 },
    archive: { codec: 'zstd', bytes: cs.reduce((a, c) => a + c.rawSize, 0), chunks: cs },
  };
}

test('streamOffsets places content entries back to back and gitlinks nowhere', () => {
  const table = [
    e('a', 5),
    e('g', 0, { mode: MODE_GITLINK }),
    e('empty', 0),
    e('link', 3, { mode: MODE_SYMLINK }),
    e('run', 10, { mode: MODE_EXEC }),
    e('h', 0, { mode: MODE_GITLINK }),
    e('z', 1),
  ];
  assert.deepEqual(streamOffsets(table), [0, -1, 5, 5, 8, -1, 18]);
  assert.equal(streamLength(table), 19);
  assert.deepEqual(streamOffsets([]), []);
  assert.equal(streamLength([]), 0);
  assert.deepEqual(streamOffsets([e('g', 0, { mode: MODE_GITLINK })]), [-1]);
  // Offsets above 2^32 are exact.
  assert.deepEqual(streamOffsets([e('big', 2 ** 33 + 1), e('next', 1)]), [0, 2 ** 33 + 1]);
});

test('chunkStarts accumulates raw sizes, including empty chunks', () => {
  assert.deepEqual(chunkStarts(chunks(7, 0, 6, 5)), [0, 7, 7, 13]);
  assert.deepEqual(chunkStarts(chunks(4)), [0]);
  assert.deepEqual(chunkStarts([]), []);
  assert.deepEqual(chunkStarts(chunks(2 ** 31 - 1, 2 ** 31 - 1, 1)), [0, 2 ** 31 - 1, 2 ** 32 - 2]);
});

test('chunkAt finds the chunk that holds a byte, skipping empty chunks', () => {
  const starts = chunkStarts(chunks(7, 0, 6, 5)); // bytes 0-6 | (none) | 7-12 | 13-17
  const expected: [number, number][] = [
    [0, 0],
    [6, 0],
    [7, 2],
    [12, 2],
    [13, 3],
    [17, 3],
  ];
  for (const [pos, c] of expected) assert.equal(chunkAt(starts, pos), c, `byte ${pos}`);
  // Every byte of a regular layout, exhaustively.
  const sizes = [3, 1, 4, 1, 5, 9, 2, 6];
  const st = chunkStarts(chunks(...sizes));
  let pos = 0;
  sizes.forEach((size, c) => {
    for (let k = 0; k < size; k++, pos++) assert.equal(chunkAt(st, pos), c, `byte ${pos}`);
  });
  assert.equal(chunkAt([0], 0), 0);
  assert.equal(chunkAt([0, 2 ** 32], 2 ** 32 + 7), 1);
});

test('chunkSpan covers the first and last byte of a range', () => {
  const starts = chunkStarts(chunks(4, 4, 4, 4)); // [0, 4, 8, 12]
  assert.deepEqual(chunkSpan(starts, 0, 4), [0, 0]); // ends exactly at a boundary
  assert.deepEqual(chunkSpan(starts, 0, 5), [0, 1]);
  assert.deepEqual(chunkSpan(starts, 3, 2), [0, 1]); // straddles a boundary
  assert.deepEqual(chunkSpan(starts, 4, 1), [1, 1]);
  assert.deepEqual(chunkSpan(starts, 3, 10), [0, 3]); // spans four chunks
  assert.deepEqual(chunkSpan(starts, 15, 1), [3, 3]);
  const withEmpty = chunkStarts(chunks(4, 0, 0, 4)); // [0, 4, 4, 4]
  assert.deepEqual(chunkSpan(withEmpty, 2, 4), [0, 3]);
  assert.deepEqual(chunkSpan(withEmpty, 4, 4), [3, 3]);
});

test('chunksWithConverted lists only chunks holding converted bytes', () => {
  // Chunks: [0,4) [4,8) [8,12) [12,16)
  const m = manifestWith(chunks(4, 4, 4, 4));
  const table = [
    e('a', 3), // 0..2, chunk 0
    e('b', 5, { converted: true }), // 3..7, chunks 0-1
    e('c', 0, { mode: MODE_GITLINK }),
    e('d', 0, { converted: true }), // empty: no chunk
    e('e', 4), // 8..11, chunk 2
    e('f', 4, { converted: true }), // 12..15, chunk 3
  ];
  assert.deepEqual(chunksWithConverted(m, table), [0, 1, 3]);
  // Nothing converted.
  assert.deepEqual(chunksWithConverted(m, table.map((x) => ({ ...x, flags: 0 }))), []);
  // A converted file ending exactly at a boundary does not pull in the next chunk.
  assert.deepEqual(chunksWithConverted(m, [e('x', 4, { converted: true }), e('y', 12)]), [0]);
  // A converted file spanning everything.
  assert.deepEqual(chunksWithConverted(m, [e('x', 1), e('y', 15, { converted: true })]), [0, 1, 2, 3]);
  // Gitlinks between files do not shift offsets.
  assert.deepEqual(
    chunksWithConverted(m, [e('a', 8), e('g1', 0, { mode: MODE_GITLINK }), e('g2', 0, { mode: MODE_GITLINK }), e('s', 1, { mode: MODE_SYMLINK, converted: true })]),
    [2],
  );
  // The result is sorted and unique even when many files share chunks.
  const many = Array.from({ length: 16 }, (_, i) => e(`f${String(i).padStart(2, '0')}`, 1, { converted: i % 3 === 0 }));
  assert.deepEqual(chunksWithConverted(m, many), [0, 1, 2, 3]);
});

test('chunksWithConverted with empty chunks in the list', () => {
  const m = manifestWith(chunks(0, 5, 0, 5, 0)); // starts [0,0,5,5,10]
  assert.deepEqual(chunksWithConverted(m, [e('a', 5, { converted: true }), e('b', 5)]), [1]);
  assert.deepEqual(chunksWithConverted(m, [e('a', 5), e('b', 5, { converted: true })]), [3]);
  // Bytes 4..5 sit in chunks 1 and 3; the empty chunk 2 between them may or may not be listed.
  const got = chunksWithConverted(m, [e('a', 4), e('b', 2, { converted: true }), e('c', 4)]);
  assert.ok(got.includes(1) && got.includes(3) && got.every((c) => c >= 1 && c <= 3), String(got));
});
