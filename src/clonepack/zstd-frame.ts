/**
 * Read the declared content size from a zstd frame header (RFC 8878 §3.1.1.1),
 * so a client can refuse a frame that would decompress to more than the
 * manifest promised before allocating anything.
 */
const MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/** Where the frame header's content size field is and how wide, or null if this is not a zstd frame header. */
function headerFields(buf: Uint8Array): { fhd: number; at: number; fcsSize: number } | null {
  if (buf.length < 6 || buf[0] !== MAGIC[0] || buf[1] !== MAGIC[1] || buf[2] !== MAGIC[2] || buf[3] !== MAGIC[3]) return null;
  const fhd = buf[4]!;
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const dictFlag = fhd & 3;
  const at = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][dictFlag]!;
  const fcsSize = fcsFlag === 0 ? (singleSegment ? 1 : 0) : [0, 2, 4, 8][fcsFlag]!;
  return { fhd, at, fcsSize };
}

export function zstdContentSize(buf: Uint8Array): number | null {
  const h = headerFields(buf);
  if (!h || h.fcsSize === 0 || h.at + h.fcsSize > buf.length) return null;
  const { at, fcsSize } = h;
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  if (fcsSize === 1) return view[at]!;
  if (fcsSize === 2) return view.readUInt16LE(at) + 256;
  if (fcsSize === 4) return view.readUInt32LE(at);
  const v = view.readUInt32LE(at) + view.readUInt32LE(at + 4) * 2 ** 32;
  return Number.isSafeInteger(v) ? v : null;
}

/**
 * Where the zstd frame at the start of `buf` ends (header, blocks up to the last
 * one, optional checksum), or null if it does not end inside `buf` or has a
 * reserved block type. Reads only block headers, never decompresses.
 */
export function zstdFrameEnd(buf: Uint8Array): number | null {
  const h = headerFields(buf);
  if (!h || h.fhd & 0x08) return null; // bit 3 is reserved: not a frame zstd would decode
  let at = h.at + h.fcsSize;
  for (;;) {
    if (at + 3 > buf.length) return null;
    const bh = buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16);
    const type = (bh >> 1) & 3;
    if (type === 3) return null;
    at += 3 + (type === 1 ? 1 : bh >>> 3); // an RLE block stores one byte, raw and compressed ones their size
    if (at > buf.length) return null;
    if (bh & 1) break;
  }
  if (h.fhd & 0x04) at += 4; // content checksum
  return at <= buf.length ? at : null;
}

/**
 * The declared content size of `buf` if it is exactly one zstd frame, else null.
 * What a decompressor allocates is the sum over every frame in the buffer (or
 * unbounded when one declares nothing), so a frame declaring the expected size
 * followed by a second frame (a decompression bomb) must be refused here, before
 * decompressing, not after.
 */
export function zstdSingleFrameSize(buf: Uint8Array): number | null {
  const size = zstdContentSize(buf);
  return size !== null && zstdFrameEnd(buf) === buf.length ? size : null;
}
