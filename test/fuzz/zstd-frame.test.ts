/**
 * Properties of the client's zstd frame handling (src/clonepack/zstd-frame.ts,
 * used by src/client/clone.ts for the file table and src/client/writer.ts for
 * archive chunks): the frame walker finds the same frame end as libzstd's own
 * ZSTD_findFrameCompressedSize on valid, mutated and concatenated frames, and the
 * client's rule (decompress only a buffer that is exactly one frame declaring the
 * expected size) never lets a decompression allocate more than that size.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compress, Decompressor } from 'zstd-napi';
import binding from 'zstd-napi/binding.js';
import { zstdContentSize, zstdFrameEnd, zstdSingleFrameSize } from '../../src/clonepack/zstd-frame.js';
import { fuzzParams, mutated, parsesOrRefuses, randomBytes } from './fuzz-support.js';
import { rleBomb } from './zstd-frames.js';

type CompressParams = Parameters<typeof compress>[1];

const content = fc.oneof(
  fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a)),
  fc.tuple(fc.string({ minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 3000 })).map(([s, n]) => Buffer.from(s.repeat(n))),
);
/** Frames as the builder and the zstd library write them: any level, with or without content size and checksum. */
const frame = fc
  .record({ data: content, level: fc.integer({ min: 1, max: 19 }), size: fc.boolean(), checksum: fc.boolean() })
  .map(({ data, level, size, checksum }) => ({ data, z: compress(data, { compressionLevel: level, contentSizeFlag: size, checksumFlag: checksum } as CompressParams) }));

/** libzstd's frame end, or null where it refuses. */
function libzstdFrameEnd(buf: Buffer): number | null {
  try {
    return binding.findFrameCompressedSize(buf);
  } catch {
    return null;
  }
}

test('valid frames: the walker ends where libzstd does, and the single-frame size is the content size when declared', () => {
  fc.assert(
    fc.property(frame, ({ data, z }) => {
      assert.equal(zstdFrameEnd(z), z.length);
      assert.equal(libzstdFrameEnd(z), z.length);
      const declared = zstdContentSize(z);
      assert.ok(declared === null || declared === data.length);
      assert.equal(zstdSingleFrameSize(z), declared);
    }),
    fuzzParams(300),
  );
});

test('two frames, or a frame with a skippable frame or bytes after it, are never one frame', () => {
  const skippable = fc.uint8Array({ maxLength: 40 }).map((a) => {
    const h = Buffer.alloc(8);
    h.writeUInt32LE(0x184d2a50, 0);
    h.writeUInt32LE(a.length, 4);
    return Buffer.concat([h, a]);
  });
  const tail = fc.oneof(frame.map((f) => f.z), skippable, fc.uint8Array({ minLength: 1, maxLength: 16 }).map((a) => Buffer.from(a)));
  fc.assert(
    fc.property(frame, tail, ({ z }, t) => {
      const both = Buffer.concat([z, t]);
      assert.equal(zstdFrameEnd(both), z.length);
      assert.equal(zstdSingleFrameSize(both), null);
    }),
    fuzzParams(300),
  );
});

test('mutated frames: the walker agrees with libzstd wherever libzstd finds a frame end, and never ends outside the bytes', () => {
  fc.assert(
    fc.property(mutated(frame.map((f) => f.z)), (z) => {
      const ours = parsesOrRefuses(() => zstdFrameEnd(z));
      assert.ok(ours.ok);
      const theirs = libzstdFrameEnd(z);
      if (theirs !== null) assert.equal(ours.value, theirs);
      if (ours.value !== null) assert.ok(ours.value <= z.length);
    }),
    fuzzParams(1500),
  );
});

const dctx = new Decompressor();

test("the client's rule: bytes accepted as one frame of n bytes decompress to at most n bytes, or fail", () => {
  const inputs = fc.oneof(
    mutated(frame.map((f) => f.z)),
    randomBytes(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), 256),
    fc.tuple(frame, fc.integer({ min: 1, max: 64 })).map(([f, mib]) => Buffer.concat([f.z, rleBomb(mib * 2 ** 20)])),
  );
  fc.assert(
    fc.property(inputs, (z) => {
      const n = zstdSingleFrameSize(z);
      if (n === null || n > 2 ** 20) return; // refused before decompressing (the manifest bounds n further)
      // zstd's own errors are what the client turns into integrity failures; memory must stay bounded.
      const out = parsesOrRefuses(() => dctx.decompress(z), (e) => e instanceof Error);
      if (out.ok) assert.ok(out.value.length <= n, `${out.value.length} bytes from a frame declaring ${n}`);
    }),
    fuzzParams(1500),
  );
});

test('a frame declaring 10 bytes followed by a 256 MiB RLE bomb frame is not one frame (the client used to decompress it)', () => {
  const z = Buffer.concat([compress(Buffer.from('0123456789')), rleBomb(256 * 2 ** 20)]);
  assert.equal(zstdContentSize(z), 10); // what the client checked before: the first frame's header alone
  assert.equal(zstdSingleFrameSize(z), null);
  assert.equal(zstdFrameEnd(z), libzstdFrameEnd(z));
});
