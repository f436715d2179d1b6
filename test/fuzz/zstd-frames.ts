/** Hand-built zstd frames for the frame-handling tests. */

/**
 * One frame declaring `bytes` (a multiple of 128 KiB) of content, made of RLE
 * blocks of 128 KiB: 4 bytes per block, so 256 MiB take ~8 KiB. libzstd decodes it.
 */
export function rleBomb(bytes: number, fill = 0x7a): Buffer {
  const BLOCK = 128 * 1024;
  const blocks = bytes / BLOCK;
  if (!Number.isInteger(blocks) || blocks < 1) throw new Error('rleBomb: bytes must be a positive multiple of 128 KiB');
  const out = Buffer.alloc(13 + blocks * 4);
  Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xe0]).copy(out); // magic; single segment, 8-byte content size
  out.writeBigUInt64LE(BigInt(bytes), 5);
  for (let i = 0; i < blocks; i++) {
    const header = (BLOCK << 3) | (1 << 1) | (i === blocks - 1 ? 1 : 0); // RLE block, last flag on the final one
    out.writeUIntLE(header, 13 + i * 4, 3);
    out[13 + i * 4 + 3] = fill;
  }
  return out;
}
