/**
 * Properties of the pack and pack index readers (src/git/pack.ts, src/git/idx.ts)
 * against the real git: for repositories generated from random contents, parseIdx
 * agrees with `git show-index` and every whole object inflates to bytes whose id
 * is the one git gave it. Mutated indexes, pack headers, object headers and
 * object slices are read or refused with a SnapError, and a forged count or
 * object size never allocates what it claims.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { deflateSync } from 'node:zlib';
import fc from 'fast-check';
import { objectSpans, parseIdx, oidAt } from '../../src/git/idx.js';
import { inflateObject, objectOid, parseObjectHeader, parsePackHeader, OBJ_OFS_DELTA, OBJ_REF_DELTA } from '../../src/git/pack.js';
import { git, gitText, initRepo, noise, packFiles, tempRoot, writeFiles } from '../git/helpers.js';
import { fuzzParams, mutated, parsesOrRefuses, randomBytes } from './fuzz-support.js';

const root = tempRoot('fuzz-pack');
let repoCount = 0;

/** A repository with these files over `commits` commits (each rewrites a few), packed by git; optionally every offset in the 64-bit table. */
function packRepo(files: Buffer[], commits: number, largeOffsets: boolean): { dir: string; pack: Buffer; idx: Buffer } {
  const dir = initRepo(root, `r${repoCount++}`);
  for (let c = 0; c < commits; c++) {
    const tree: Record<string, Buffer> = {};
    files.forEach((f, i) => (tree[`d${i % 3}/f${i}`] = c === 0 || i % (c + 1) === 0 ? Buffer.concat([f, Buffer.from(` ${c}`)]) : f));
    writeFiles(dir, tree);
    git(dir, ['add', '-A']);
    git(dir, ['commit', '-q', '--allow-empty', '-m', `c${c}`]);
  }
  git(dir, ['repack', '-a', '-d', '-q', '-f', ...(largeOffsets ? ['--window=10'] : [])]);
  let [p] = packFiles(dir);
  if (largeOffsets) {
    // Rewrite the index with every offset above 16 in the 64-bit table.
    fs.rmSync(p!.idx);
    git(dir, ['index-pack', '--index-version=2,16', p!.pack]);
    [p] = packFiles(dir);
  }
  return { dir, pack: fs.readFileSync(p!.pack), idx: fs.readFileSync(p!.idx) };
}

function showIndex(dir: string, idx: Buffer): { offset: number; oid: string; crc: number }[] {
  return gitText(dir, ['show-index'], { input: idx })
    .split('\n')
    .map((line) => {
      const m = /^(\d+) ([0-9a-f]{40}) \(([0-9a-f]{8})\)$/.exec(line)!;
      return { offset: Number(m[1]), oid: m[2]!, crc: parseInt(m[3]!, 16) };
    });
}

const contents = fc.array(
  fc.oneof(
    fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a)),
    fc.tuple(fc.string({ maxLength: 40 }), fc.integer({ min: 1, max: 200 })).map(([s, n]) => Buffer.from(s.repeat(n))),
  ),
  { minLength: 1, maxLength: 8 },
);

test('generated repositories: parseIdx agrees with git show-index and every whole object hashes to its id', () => {
  fc.assert(
    fc.property(contents, fc.integer({ min: 1, max: 3 }), fc.boolean(), (files, commits, large) => {
      const r = packRepo(files, commits, large);
      const idx = parseIdx(r.idx);
      const golden = showIndex(r.dir, r.idx);
      assert.equal(idx.count, golden.length);
      assert.equal(parsePackHeader(r.pack).objects, idx.count);
      golden.forEach((g, i) => {
        assert.equal(oidAt(idx, i).toString('hex'), g.oid);
        assert.equal(idx.offsets[i], g.offset);
        assert.equal(idx.crc32.readUInt32BE(i * 4), g.crc);
      });
      assert.deepEqual(idx.packChecksum, r.pack.subarray(r.pack.length - 20));
      let whole = 0;
      for (const s of objectSpans(idx, r.pack.length)) {
        const slice = r.pack.subarray(s.offset, s.offset + s.length);
        const h = parseObjectHeader(slice, 0);
        if (h.type === OBJ_OFS_DELTA || h.type === OBJ_REF_DELTA) continue;
        const { type, data } = inflateObject(slice, h.size);
        assert.equal(objectOid(type, data).toString('hex'), s.oid);
        whole++;
      }
      assert.ok(whole > 0);
      fs.rmSync(r.dir, { recursive: true, force: true });
    }),
    fuzzParams(6, 500),
  );
});

// Fixed inputs for the mutation properties: a packed history (with deltas) and the same with 64-bit offsets.
const noiseFiles = Array.from({ length: 6 }, (_, i) => Buffer.concat([noise(700 + 300 * i, i + 1), Buffer.from('shared tail\n'.repeat(30))]));
const SAMPLES = [packRepo(noiseFiles, 3, false), packRepo(noiseFiles.slice(0, 3), 2, true)];
const sample = fc.constantFrom(...SAMPLES);

test('mutated pack indexes: parsed and spanned consistently, or refused with a SnapError', () => {
  fc.assert(
    fc.property(sample.chain((s) => fc.tuple(fc.constant(s), mutated(fc.constant(s.idx)))), fc.boolean(), ([s, bytes], verify) => {
      const out = parsesOrRefuses(() => parseIdx(bytes, { verifyChecksum: verify }));
      if (!out.ok) return;
      const spans = parsesOrRefuses(() => objectSpans(out.value, s.pack.length));
      if (!spans.ok) return;
      for (const sp of spans.value) assert.ok(sp.offset >= 12 && sp.length >= 3 && sp.offset + sp.length <= s.pack.length - 20);
    }),
    fuzzParams(1000),
  );
});

test('random bytes behind the index magic: refused with a SnapError', () => {
  const magic = Buffer.from([0xff, 0x74, 0x4f, 0x63, 0, 0, 0, 2]);
  fc.assert(
    fc.property(randomBytes(magic, 2200), fc.boolean(), (bytes, verify) => {
      parsesOrRefuses(() => parseIdx(bytes, { verifyChecksum: verify }));
    }),
    fuzzParams(1000),
  );
});

test('mutated object slices: inflated to exactly the declared size, or refused with a SnapError', () => {
  const slices = SAMPLES.flatMap((s) => objectSpans(parseIdx(s.idx), s.pack.length).map((sp) => s.pack.subarray(sp.offset, sp.offset + sp.length)));
  fc.assert(
    fc.property(mutated(fc.constantFrom(...slices)), fc.option(fc.nat({ max: 5000 }), { nil: undefined }), (slice, expected) => {
      const out = parsesOrRefuses(() => inflateObject(slice, expected));
      if (out.ok) {
        assert.equal(out.value.data.length, parseObjectHeader(slice, 0).size);
        if (expected !== undefined) assert.equal(out.value.data.length, expected);
      }
    }),
    fuzzParams(1000),
  );
});

test('object and pack headers of random bytes at any offset: read with a safe size, or refused with a SnapError', () => {
  fc.assert(
    fc.property(randomBytes(null, 24), fc.integer({ min: -2, max: 30 }), (bytes, at) => {
      const h = parsesOrRefuses(() => parseObjectHeader(bytes, at));
      if (h.ok) assert.ok(Number.isSafeInteger(h.value.size) && h.value.headerLength >= 1 && at + h.value.headerLength <= bytes.length);
      parsesOrRefuses(() => parsePackHeader(bytes));
    }),
    fuzzParams(2000),
  );
});

/** An object header declaring `size` bytes of `type`. */
function objectHeader(type: number, size: number): Buffer {
  const out = [((size > 15 ? 0x80 : 0) | (type << 4) | (size % 16))];
  for (let rest = Math.floor(size / 16); rest > 0; rest = Math.floor(rest / 128)) out.push((rest >= 128 ? 0x80 : 0) | rest % 128);
  return Buffer.from(out);
}

test('an object header claiming up to 2^53 bytes over a tiny stream is refused without allocating that much', () => {
  const body = deflateSync(Buffer.from('tiny'));
  for (const size of [2 ** 31, 2 ** 32 - 1, 2 ** 32, 3 * 2 ** 30, 2 ** 40, 2 ** 53 - 1]) {
    const slice = Buffer.concat([objectHeader(3, size), body]);
    assert.equal(parseObjectHeader(slice, 0).size, size);
    assert.equal(parsesOrRefuses(() => inflateObject(slice)).ok, false, `size ${size}`);
  }
  // And a zlib bomb (16 MiB of zeros in ~16 KiB) behind a header claiming 1 KiB stops at 1 KiB.
  const bomb = Buffer.concat([objectHeader(3, 1024), deflateSync(Buffer.alloc(16 * 2 ** 20))]);
  assert.equal(parsesOrRefuses(() => inflateObject(bomb)).ok, false);
});

test('an index whose fanout claims 2^32-1 objects is refused before anything is allocated', () => {
  for (const count of [2 ** 16, 2 ** 31, 2 ** 32 - 1]) {
    const forged = Buffer.from(SAMPLES[0]!.idx);
    forged.writeUInt32BE(count, 8 + 255 * 4);
    assert.equal(parsesOrRefuses(() => parseIdx(forged, { verifyChecksum: false })).ok, false, `count ${count}`);
  }
});

