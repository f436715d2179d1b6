import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { compress, decompress } from 'zstd-napi';
import { zstdContentSize } from '../../src/clonepack/zstd-frame.js';

const MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

function content(n: number): Buffer {
  // Half random, half repetitive: exercise both raw and compressed blocks.
  const b = Buffer.alloc(n, 0x61);
  randomBytes(Math.floor(n / 2)).copy(b);
  return b;
}

test('zstdContentSize reads the size zstd-napi declares, at every field width boundary', () => {
  // 0..255 use the 1-byte field, 256..65791 the 2-byte field (stored minus 256), then 4 bytes.
  for (const n of [0, 1, 255, 256, 257, 65791, 65792, 2 ** 20]) {
    const data = content(n);
    const frame = compress(data);
    assert.equal(zstdContentSize(frame), n, `size ${n}`);
    assert.equal(decompress(frame).length, n);
    // Works on a Uint8Array view at a non-zero offset too (as received from the network).
    const padded = Buffer.concat([Buffer.from([9, 9, 9]), frame]);
    assert.equal(zstdContentSize(new Uint8Array(padded.buffer, padded.byteOffset + 3, frame.length)), n, `view, size ${n}`);
  }
});

function runZstd(args: string[], input?: Buffer): Buffer {
  const r = spawnSync('zstd', args, { input, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, r.stderr.toString());
  return r.stdout;
}

test('zstdContentSize on frames from the zstd CLI', (t) => {
  if (spawnSync('zstd', ['--version']).status !== 0) return t.skip('zstd CLI not installed');
  const dir = mkdtempSync(join(tmpdir(), 'snapclone-zstd-'));
  try {
    for (const n of [0, 1, 255, 256, 1000, 65791, 65792, 300_000]) {
      const data = content(n);
      const file = join(dir, `f${n}`);
      writeFileSync(file, data);
      const withSize = runZstd(['-q', '-c', file]);
      assert.equal(zstdContentSize(withSize), n, `zstd -c, size ${n}`);
      assert.deepEqual(decompress(withSize), data);
      const noSize = runZstd(['-q', '-c', '--no-content-size', file]);
      assert.equal(zstdContentSize(noSize), null, `zstd -c --no-content-size, size ${n}`);
      assert.deepEqual(decompress(noSize), data);
      const multi = runZstd(['-q', '-c', '-19', '--single-thread', file]);
      assert.equal(zstdContentSize(multi), n, `zstd -19, size ${n}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('zstdContentSize on hand-built headers (dictionary ids, window descriptor, 8-byte size)', () => {
  const h = (...bytes: number[]) => Buffer.from([...MAGIC, ...bytes]);
  // Single segment, 1-byte dictionary id, 1-byte size.
  assert.equal(zstdContentSize(h(0x21, 0x07, 42)), 42);
  // Not single segment (window descriptor), 4-byte dictionary id, 4-byte size.
  assert.equal(zstdContentSize(h(0x83, 0x50, 1, 2, 3, 4, 0x78, 0x56, 0x34, 0x12)), 0x12345678);
  // 2-byte dictionary id, 2-byte size (+256).
  assert.equal(zstdContentSize(h(0x62, 0xaa, 0xbb, 0x00, 0x01)), 256 + 256);
  // 8-byte size.
  const eight = Buffer.alloc(8);
  eight.writeBigUInt64LE(2n ** 40n + 5n);
  assert.equal(zstdContentSize(h(0xe0, ...eight)), 2 ** 40 + 5);
  // An 8-byte size beyond 2^53 is not representable: null, not a rounded number.
  eight.writeBigUInt64LE(2n ** 63n + 1n);
  assert.equal(zstdContentSize(h(0xe0, ...eight)), null);
  // No size field: fcs flag 0 and not single segment.
  assert.equal(zstdContentSize(h(0x00, 0x50, 0, 0, 0)), null);
  assert.equal(zstdContentSize(h(0x03, 0x50, 1, 2, 3, 4)), null);
});

test('zstdContentSize returns null for non-zstd or truncated bytes', () => {
  const frame = compress(content(5000));
  assert.equal(zstdContentSize(frame), 5000);
  for (let n = 0; n < 7; n++) {
    // The 2-byte size field ends at byte 7: every shorter prefix has no size.
    assert.equal(zstdContentSize(frame.subarray(0, n)), null, `prefix ${n}`);
  }
  assert.equal(zstdContentSize(Buffer.from('hello, world')), null);
  assert.equal(zstdContentSize(Buffer.alloc(0)), null);
  assert.equal(zstdContentSize(Buffer.alloc(64)), null);
  // Skippable frame magic.
  assert.equal(zstdContentSize(Buffer.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4])), null);
  // gzip and a zstd magic with one byte off.
  assert.equal(zstdContentSize(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])), null);
  const off = Buffer.from(frame);
  off[3] = 0xfe;
  assert.equal(zstdContentSize(off), null);
});
