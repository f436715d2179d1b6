/**
 * Pack file (.pack) helpers: the file header, per-object headers, and inflating
 * whole (non-delta) objects from a slice that objectSpans() in idx.ts located.
 *
 * File layout: "PACK" u32 version(2|3) u32 objectCount, objects, 20-byte SHA-1.
 * Object header: first byte = continuation bit, 3 type bits, low 4 size bits;
 * further bytes add 7 size bits each, least significant group first.
 */
import { createHasher } from '../util/digest.js';
import { lazyZlib } from '../util/lazy-builtin.js';
import { invalid } from '../util/errors.js';

export const OBJ_COMMIT = 1;
export const OBJ_TREE = 2;
export const OBJ_BLOB = 3;
export const OBJ_TAG = 4;
export const OBJ_OFS_DELTA = 6;
export const OBJ_REF_DELTA = 7;

export type ObjectTypeName = 'commit' | 'tree' | 'blob' | 'tag';
const TYPE_NAMES: Record<number, ObjectTypeName> = { 1: 'commit', 2: 'tree', 3: 'blob', 4: 'tag' };

const MAGIC = 0x5041434b; // "PACK"
const MAX_HEADER = 10; // 4 + 7*9 = 67 bits: more than any safe size needs

export interface PackHeader {
  version: number;
  objects: number;
}

export interface ObjectHeader {
  type: number; // 1..4, 6, 7
  size: number; // inflated size (of the delta data, for delta types)
  headerLength: number;
}

export function parsePackHeader(buf: Buffer): PackHeader {
  if (buf.length < 12) throw invalid('pack: truncated header');
  if (buf.readUInt32BE(0) !== MAGIC) throw invalid('pack: bad magic');
  const version = buf.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw invalid(`pack: unsupported version ${version}`);
  return { version, objects: buf.readUInt32BE(8) };
}

/** The pack's trailing SHA-1 (the checksum the .idx repeats). */
export function packTrailer(buf: Buffer): Buffer {
  if (buf.length < 32) throw invalid('pack: too short for a trailer');
  return buf.subarray(buf.length - 20);
}

export function parseObjectHeader(buf: Buffer, at: number): ObjectHeader {
  if (!Number.isSafeInteger(at) || at < 0 || at >= buf.length) throw invalid('pack: object header out of range');
  let c = buf[at]!;
  const type = (c >> 4) & 7;
  if (type === 0 || type === 5) throw invalid(`pack: invalid object type ${type} at offset ${at}`);
  let size = c & 15;
  let scale = 16;
  let n = 1;
  while (c & 0x80) {
    if (n >= MAX_HEADER) throw invalid(`pack: object header at offset ${at} is too long`);
    if (at + n >= buf.length) throw invalid(`pack: truncated object header at offset ${at}`);
    c = buf[at + n]!;
    n++;
    // Arithmetic rather than bit operations: sizes may exceed 32 bits.
    size += (c & 0x7f) * scale;
    scale *= 128;
    if (size > Number.MAX_SAFE_INTEGER) throw invalid(`pack: object size at offset ${at} is out of range`);
  }
  return { type, size, headerLength: n };
}

export function typeName(type: number): ObjectTypeName {
  const name = TYPE_NAMES[type];
  if (!name) throw invalid(`pack: object type ${type} is not a whole object`);
  return name;
}

/**
 * Inflate one whole object from its packed bytes (header at 0). Delta objects
 * are refused: resolving them needs the base, which this module does not do.
 * `expectedSize`, when given, is the size the caller already knows the object
 * has (e.g. from the file table); the header must agree before anything is
 * inflated. The compressed stream must inflate to exactly the declared size and
 * use up the slice exactly, so a wrong span is caught rather than misread.
 */
export function inflateObject(slice: Buffer, expectedSize?: number): { type: number; data: Buffer } {
  const h = parseObjectHeader(slice, 0);
  if (h.type === OBJ_OFS_DELTA || h.type === OBJ_REF_DELTA) throw invalid('pack: object is a delta, not a whole object');
  if (expectedSize !== undefined && h.size !== expectedSize) {
    throw invalid(`pack: object is ${h.size} bytes, expected ${expectedSize}`);
  }
  const compressed = slice.subarray(h.headerLength);
  let data: Buffer;
  let consumed: number;
  try {
    // The cap makes a lying header fail instead of inflating without bound.
    const r = lazyZlib().inflateSync(compressed, { maxOutputLength: Math.max(1, h.size), info: true }) as unknown as {
      buffer: Buffer;
      engine: { bytesWritten: number };
    };
    data = r.buffer;
    consumed = r.engine.bytesWritten;
  } catch (err) {
    throw invalid(`pack: cannot inflate object: ${(err as Error).message}`);
  }
  if (data.length !== h.size) throw invalid(`pack: object inflates to ${data.length} bytes, header says ${h.size}`);
  if (consumed !== compressed.length) throw invalid('pack: compressed object does not fill its slice');
  return { type: h.type, data };
}

/** The object id git gives `data` stored as `type`: SHA-1 of "<type> <len>\0<data>". */
export function objectOid(type: number | ObjectTypeName, data: Uint8Array): Buffer {
  const name = typeof type === 'number' ? typeName(type) : type;
  if (!Object.values(TYPE_NAMES).includes(name)) throw invalid(`unknown object type ${JSON.stringify(name)}`);
  return createHasher('sha1').update(`${name} ${data.length}\0`).update(data).digest();
}

export function blobOid(data: Uint8Array): Buffer {
  return objectOid('blob', data);
}
