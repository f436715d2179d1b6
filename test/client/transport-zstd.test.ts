/**
 * zstd.ts under both runtimes: Bun's built-in decoder (run for real in a Bun
 * child) and zstd-napi (here, under Node) give back a frame's bytes, and both
 * refuse a frame whose header declares less than it holds: after the
 * one-frame check (zstd-frame.ts), that is what stops a bomb.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as cryptoMod from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compress } from 'zstd-napi';
import { findBun } from '../../src/cli/launcher.js';
import { loadZstd } from '../../src/client/zstd.js';
import { zstdSingleFrameSize } from '../../src/clonepack/zstd-frame.js';
import { removeTmpDir, tmpDir } from '../support/git.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A frame, and the same frame with its declared size lowered to 1000 (its 4-byte size field rewritten). */
function frames(): { raw: Buffer; good: Buffer; lying: Buffer } {
  const raw = Buffer.alloc(200_000);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7919) % 251;
  const good = compress(raw);
  assert.equal(zstdSingleFrameSize(good), raw.length);
  const lying = Buffer.from(good);
  const fhd = lying[4]!;
  assert.equal(fhd >> 6, 2, 'a 4-byte content size field');
  lying.writeUInt32LE(1000, 5 + (((fhd >> 5) & 1) ? 0 : 1));
  assert.equal(zstdSingleFrameSize(lying), 1000);
  return { raw, good, lying };
}

test('under Node, zstd.ts decodes a frame and refuses one that declares less than it holds', async () => {
  const { raw, good, lying } = frames();
  const decompress = await loadZstd();
  assert.deepEqual(decompress(good), raw);
  assert.throws(() => decompress(lying));
});

const bun = findBun(ROOT);
test('under Bun, zstd.ts (Bun.zstdDecompressSync) decodes a frame and refuses one that declares less than it holds', { skip: bun === null ? 'no Bun installed' : false }, () => {
  const { raw, good, lying } = frames();
  const dir = tmpDir('snapclone-zstd-bun');
  try {
    writeFileSync(join(dir, 'good.zst'), good);
    writeFileSync(join(dir, 'lying.zst'), lying);
    const script = `
      const { readFileSync } = require('node:fs');
      const { loadZstd } = await import(${JSON.stringify(join(ROOT, 'dist/src/client/zstd.js'))});
      const d = await loadZstd();
      const out = d(readFileSync(${JSON.stringify(join(dir, 'good.zst'))}));
      let refused = false;
      try { d(readFileSync(${JSON.stringify(join(dir, 'lying.zst'))})); } catch { refused = true; }
      console.log(JSON.stringify({ bun: typeof Bun, buffer: Buffer.isBuffer(out), sha: require('node:crypto').createHash('sha256').update(out).digest('hex'), refused }));`;
    const r = JSON.parse(execFileSync(bun!, ['-e', script], { encoding: 'utf8' })) as { bun: string; buffer: boolean; sha: string; refused: boolean };
    const { createHash } = cryptoMod;
    assert.deepEqual(r, { bun: 'object', buffer: true, sha: createHash('sha256').update(raw).digest('hex'), refused: true });
  } finally {
    removeTmpDir(dir);
  }
});
