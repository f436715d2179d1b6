/**
 * Pack index version 2 (.idx) reader. The index is untrusted input (it comes
 * from an artifact store), so every count is checked against the buffer length
 * before anything is allocated from it.
 *
 * Layout, big-endian:
 *   "\377tOc" u32 version(2)  u32 fanout[256]  (fanout[b] = objects whose first byte <= b)
 *   oid[count] (20 bytes each, strictly ascending)
 *   crc32[count]               (CRC-32 of each object's bytes in the pack)
 *   u32 offset[count]          (MSB set: the low 31 bits index the 64-bit table)
 *   u64 largeOffset[n]         (only for offsets that do not fit in 31 bits)
 *   20 bytes pack checksum, 20 bytes SHA-1 of everything above
 */
import { createHasher } from '../util/digest.js';
import { invalid } from '../util/errors.js';

const MAGIC = 0xff744f63; // "\377tOc"
const VERSION = 2;
const FANOUT_AT = 8;
const OIDS_AT = FANOUT_AT + 256 * 4; // 1032
const TRAILER = 40;
const PER_OBJECT = 20 + 4 + 4;
const LARGE = 0x80000000;
const PACK_HEADER = 12;
const PACK_TRAILER = 20;

export interface PackIndex {
  count: number;
  oids: Buffer; // count * 20 raw bytes, ascending
  offsets: number[]; // pack offset of each object, in oid order
  crc32: Buffer; // count * 4, big-endian CRC-32 of each object's packed bytes
  packChecksum: Buffer; // 20 bytes: the trailer of the matching .pack
  idxChecksum: Buffer; // 20 bytes
}

export interface ObjectSpan {
  oid: string; // hex
  offset: number;
  length: number; // packed bytes: header + compressed data (+ delta base reference)
  crc32: number;
}

export interface ParseIdxOptions {
  /** Check the trailing SHA-1 (default true). Skip only if the bytes were already verified. */
  verifyChecksum?: boolean;
}

export function parseIdx(buf: Buffer, options: ParseIdxOptions = {}): PackIndex {
  if (buf.length < OIDS_AT + TRAILER) throw invalid('pack index: truncated header');
  if (buf.readUInt32BE(0) !== MAGIC) throw invalid('pack index: bad magic (not a version 2 index)');
  const version = buf.readUInt32BE(4);
  if (version !== VERSION) throw invalid(`pack index: unsupported version ${version}`);

  let prev = 0;
  for (let b = 0; b < 256; b++) {
    const n = buf.readUInt32BE(FANOUT_AT + b * 4);
    if (n < prev) throw invalid(`pack index: fanout decreases at byte ${b}`);
    prev = n;
  }
  const count = prev;
  // Fixed part first, so a forged count cannot make us allocate or read past the end.
  const fixed = OIDS_AT + count * PER_OBJECT + TRAILER;
  if (fixed > buf.length) throw invalid(`pack index: ${count} objects do not fit in ${buf.length} bytes`);
  const largeBytes = buf.length - fixed;
  if (largeBytes % 8 !== 0) throw invalid('pack index: size is not consistent with the object count');
  const largeCount = largeBytes / 8;
  // Each entry of the 64-bit table belongs to one object. (git's reader allows only
  // count-1, since offset 12 fits in 31 bits, but index-pack --index-version=2,0
  // writes count entries.)
  if (largeCount > count) throw invalid('pack index: too many 64-bit offsets');

  const idxChecksum = Buffer.from(buf.subarray(buf.length - 20));
  if (options.verifyChecksum !== false) {
    const actual = createHasher('sha1').update(buf.subarray(0, buf.length - 20)).digest();
    if (!actual.equals(idxChecksum)) throw invalid('pack index: checksum mismatch');
  }

  const oidsEnd = OIDS_AT + count * 20;
  const oids = Buffer.from(buf.subarray(OIDS_AT, oidsEnd));
  // Strictly ascending oids, and each one in the fanout bucket of its first byte.
  let bucket = 0;
  for (let i = 0; i < count; i++) {
    const at = i * 20;
    if (i > 0 && Buffer.compare(oids.subarray(at - 20, at), oids.subarray(at, at + 20)) >= 0) {
      throw invalid(`pack index: object ${i} is out of order or repeated`);
    }
    const first = oids[at]!;
    while (bucket < first) {
      if (buf.readUInt32BE(FANOUT_AT + bucket * 4) > i) throw invalid('pack index: fanout does not match the object ids');
      bucket++;
    }
    if (buf.readUInt32BE(FANOUT_AT + first * 4) <= i) throw invalid('pack index: fanout does not match the object ids');
  }

  const crcAt = oidsEnd;
  const offAt = crcAt + count * 4;
  const largeAt = offAt + count * 4;
  const crc32 = Buffer.from(buf.subarray(crcAt, offAt));
  const offsets: number[] = new Array(count);
  const usedLarge = new Uint8Array(largeCount);
  for (let i = 0; i < count; i++) {
    const v = buf.readUInt32BE(offAt + i * 4);
    if (v < LARGE) {
      offsets[i] = v;
    } else {
      const k = v - LARGE;
      if (k >= largeCount) throw invalid(`pack index: object ${i} names 64-bit offset ${k} of ${largeCount}`);
      if (usedLarge[k]) throw invalid(`pack index: 64-bit offset ${k} is shared`);
      usedLarge[k] = 1;
      const hi = buf.readUInt32BE(largeAt + k * 8);
      const lo = buf.readUInt32BE(largeAt + k * 8 + 4);
      const off = hi * 2 ** 32 + lo;
      if (!Number.isSafeInteger(off)) throw invalid(`pack index: object ${i} offset out of range`);
      // git only uses the large table for offsets that do not fit in 31 bits
      // (or below a lower limit chosen with index-pack --index-version=2,<limit>),
      // so a small value here is legal; we only require it to be a real offset.
      offsets[i] = off;
    }
    if (offsets[i]! < PACK_HEADER) throw invalid(`pack index: object ${i} offset ${offsets[i]} lies inside the pack header`);
  }
  if (usedLarge.includes(0)) throw invalid('pack index: unused 64-bit offset');

  return {
    count,
    oids,
    offsets,
    crc32,
    packChecksum: Buffer.from(buf.subarray(buf.length - 40, buf.length - 20)),
    idxChecksum,
  };
}

export function oidAt(idx: PackIndex, i: number): Buffer {
  return idx.oids.subarray(i * 20, i * 20 + 20);
}

/** Position of `oid` (20 raw bytes) in the index, or -1. */
export function findOid(idx: PackIndex, oid: Buffer): number {
  let lo = 0;
  let hi = idx.count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = Buffer.compare(oidAt(idx, mid), oid);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}

/**
 * Every object's byte range in the pack, in pack order. Objects are stored back
 * to back, so an object ends where the next begins; the last one ends at the
 * 20-byte trailer. `packSize` is the .pack file's length.
 */
export function objectSpans(idx: PackIndex, packSize: number): ObjectSpan[] {
  const end = packSize - PACK_TRAILER;
  if (!Number.isSafeInteger(packSize) || end < PACK_HEADER) throw invalid(`pack index: pack size ${packSize} is too small`);
  const order = Array.from({ length: idx.count }, (_, i) => i).sort((a, b) => idx.offsets[a]! - idx.offsets[b]!);
  const spans: ObjectSpan[] = new Array(idx.count);
  for (let k = 0; k < order.length; k++) {
    const i = order[k]!;
    const offset = idx.offsets[i]!;
    const next = k + 1 < order.length ? idx.offsets[order[k + 1]!]! : end;
    // Smallest possible object: a 1-byte header and a 2-byte zlib stream header.
    if (next - offset < 3) {
      throw invalid(next === offset ? `pack index: two objects at offset ${offset}` : `pack index: object at offset ${offset} does not fit in the pack`);
    }
    spans[k] = { oid: oidAt(idx, i).toString('hex'), offset, length: next - offset, crc32: idx.crc32.readUInt32BE(i * 4) };
  }
  if (order.length > 0 && spans[0]!.offset !== PACK_HEADER) throw invalid('pack index: first object does not follow the pack header');
  return spans;
}
