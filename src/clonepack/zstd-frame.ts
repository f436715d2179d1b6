/**
 * Read the declared content size from a zstd frame header (RFC 8878 §3.1.1.1),
 * so a client can refuse a frame that would decompress to more than the
 * manifest promised before allocating anything.
 */
export function zstdContentSize(buf: Uint8Array): number | null {
  if (buf.length < 6 || buf[0] !== 0x28 || buf[1] !== 0xb5 || buf[2] !== 0x2f || buf[3] !== 0xfd) return null;
  const fhd = buf[4]!;
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const dictFlag = fhd & 3;
  let at = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][dictFlag]!;
  const fcsSize = fcsFlag === 0 ? (singleSegment ? 1 : 0) : [0, 2, 4, 8][fcsFlag]!;
  if (fcsSize === 0 || at + fcsSize > buf.length) return null;
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  if (fcsSize === 1) return view[at]!;
  if (fcsSize === 2) return view.readUInt16LE(at) + 256;
  if (fcsSize === 4) return view.readUInt32LE(at);
  const v = view.readUInt32LE(at) + view.readUInt32LE(at + 4) * 2 ** 32;
  return Number.isSafeInteger(v) ? v : null;
}
