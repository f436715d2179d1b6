/**
 * The git index (.git/index, "dircache"), version 2, written so a fresh clone
 * needs no `git read-tree`/`git update-index` pass: with the real stat data of
 * the files just written, git sees every entry as clean without rehashing.
 *
 * Layout, big-endian:
 *   "DIRC" u32 version u32 count
 *   entry: u32 ctimeSec ctimeNsec mtimeSec mtimeNsec dev ino mode uid gid size,
 *          20 bytes oid, u16 flags, path, 1..8 NULs (entry length % 8 == 0)
 *   extensions: 4-byte signature, u32 length, data
 *   20-byte SHA-1 of everything before it
 *
 * flags: bit 15 assume-valid, bit 14 extended (v3+: u16 more flags follow),
 * bits 12-13 stage, low 12 bits min(pathLength, 0xfff).
 */
import { createHasher } from '../util/digest.js';
import type { BigIntStats } from 'node:fs';
import { invalid } from '../util/errors.js';

const SIGNATURE = 0x44495243; // "DIRC"
const HEADER = 12;
const FIXED = 62;
const NAME_MASK = 0xfff;
const EXTENDED = 0x4000;
const STAT_FIELDS = ['ctimeSec', 'ctimeNsec', 'mtimeSec', 'mtimeNsec', 'dev', 'ino', 'uid', 'gid', 'size'] as const;
const MODES = new Set([0o100644, 0o100755, 0o120000, 0o160000]);

export interface IndexStat {
  ctimeSec: number;
  ctimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
  dev: number;
  ino: number;
  uid: number;
  gid: number;
  size: number;
}

/** Stat fields may also be bigints (fs.lstat with { bigint: true }): dev and ino can exceed 2^53. */
export type IndexStatInput = { [K in keyof IndexStat]: number | bigint };

export interface IndexEntry {
  path: Buffer;
  mode: number; // 0o100644, 0o100755, 0o120000 or 0o160000
  oid: Buffer; // 20 raw bytes
  stat: IndexStatInput;
}

export interface DecodedIndexEntry extends IndexEntry {
  stat: IndexStat;
  flags: number; // the on-disk u16 flags
  extendedFlags: number; // v3 only, else 0
}

export interface DecodedIndex {
  version: number;
  entries: DecodedIndexEntry[];
  /** Byte offset where the entries end (and extensions, if any, begin). */
  entriesEnd: number;
  extensions: { signature: string; data: Buffer }[];
}

/** git stores every stat field as a 32-bit value, dropping the high bits. */
function u32(v: number | bigint): number {
  return typeof v === 'bigint' ? Number(BigInt.asUintN(32, v)) : v >>> 0;
}

/**
 * Sizes are stored modulo 2^32, but 0 means "racily clean, re-check the
 * content", so git >= 2.43 stores a non-empty multiple of 4 GiB as 2^31
 * (munge_st_size); older git stored 0 and merely rehashes such files.
 */
function sizeField(v: number | bigint): number {
  const low = u32(v);
  return low === 0 && v !== 0 && v !== 0n ? 0x80000000 : low;
}

/** An index stat from fs.lstat(path, { bigint: true }) of the work-tree file (git's fill_stat_data). */
export function statFromLstat(st: BigIntStats): IndexStat {
  const split = (ns: bigint): [number, number] => {
    let sec = ns / 1_000_000_000n;
    let nsec = ns % 1_000_000_000n;
    if (nsec < 0n) {
      nsec += 1_000_000_000n;
      sec -= 1n;
    }
    return [u32(sec), Number(nsec)];
  };
  const [ctimeSec, ctimeNsec] = split(st.ctimeNs);
  const [mtimeSec, mtimeNsec] = split(st.mtimeNs);
  return {
    ctimeSec,
    ctimeNsec,
    mtimeSec,
    mtimeNsec,
    dev: u32(st.dev),
    ino: u32(st.ino),
    uid: u32(st.uid),
    gid: u32(st.gid),
    size: sizeField(st.size),
  };
}

function entryLength(pathLength: number): number {
  return (FIXED + pathLength + 8) & ~7;
}

/**
 * Encode a version 2 index from entries given as objects (stat fields may be
 * bigints, as fs.lstat(..., { bigint: true }) gives them). Entries must be in
 * index order: strictly ascending path bytes. The bytes are encodeIndexColumns'.
 */
export function encodeIndex(entries: readonly IndexEntry[]): Buffer {
  const count = entries.length;
  const pathStarts = new Uint32Array(count + 1);
  const stats = new Uint32Array(count * STAT_FIELDS.length);
  const sizes = new Float64Array(count);
  entries.forEach((e, i) => {
    if (i > 0 && Buffer.compare(entries[i - 1]!.path, e.path) >= 0) throw invalid(`index: entry ${i} is out of order or repeated`);
    if (e.oid.length !== 20) throw invalid(`index: entry ${i} oid is not 20 bytes`);
    STAT_FIELDS.forEach((k, f) => {
      const v = e.stat[k];
      if (typeof v !== 'bigint' && !Number.isInteger(v)) throw invalid(`index: entry ${i} stat ${k} is not an integer`);
      stats[i * STAT_FIELDS.length + f] = u32(v);
    });
    sizes[i] = Number(e.stat.size);
    pathStarts[i + 1] = pathStarts[i]! + e.path.length;
  });
  return encodeIndexColumns({
    count,
    pathBytes: Buffer.concat(entries.map((e) => e.path)),
    pathStarts,
    modes: Uint32Array.from(entries, (e) => e.mode),
    oids: Buffer.concat(entries.map((e) => e.oid)),
    stats,
    sizes,
  });
}

/**
 * Decode a version 2 or 3 index (v4 prefix-compresses paths; not supported),
 * verifying the checksum. An all-zero checksum is accepted: git writes that
 * when index.skipHash is set. Extensions are returned unparsed.
 */
export function decodeIndex(buf: Buffer): DecodedIndex {
  if (buf.length < HEADER + 20) throw invalid('index: truncated');
  if (buf.readUInt32BE(0) !== SIGNATURE) throw invalid('index: bad signature');
  const version = buf.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw invalid(`index: unsupported version ${version}`);
  const count = buf.readUInt32BE(8);
  const end = buf.length - 20;
  const checksum = buf.subarray(end);
  if (checksum.some((b) => b !== 0) && !createHasher('sha1').update(buf.subarray(0, end)).digest().equals(checksum)) {
    throw invalid('index: checksum mismatch');
  }
  if (count * entryLength(1) > end - HEADER) throw invalid(`index: ${count} entries do not fit`);
  const entries: DecodedIndexEntry[] = new Array(count);
  let o = HEADER;
  for (let i = 0; i < count; i++) {
    if (o + FIXED > end) throw invalid('index: truncated entry');
    const flags = buf.readUInt16BE(o + 60);
    let extendedFlags = 0;
    let nameAt = o + FIXED;
    if (flags & EXTENDED) {
      if (version < 3) throw invalid(`index: entry ${i} has extended flags in a version 2 index`);
      if (nameAt + 2 > end) throw invalid('index: truncated entry');
      extendedFlags = buf.readUInt16BE(nameAt);
      nameAt += 2;
    }
    let nameLength = flags & NAME_MASK;
    if (nameLength === NAME_MASK) {
      // Long names: the length field saturates, so the NUL terminator decides.
      const nul = buf.indexOf(0, nameAt + NAME_MASK);
      if (nul < 0 || nul >= end) throw invalid('index: unterminated path');
      nameLength = nul - nameAt;
    }
    const next = o + ((nameAt - o + nameLength + 8) & ~7);
    if (next > end) throw invalid('index: truncated entry');
    const path = Buffer.from(buf.subarray(nameAt, nameAt + nameLength));
    if (path.length === 0 || path.includes(0)) throw invalid(`index: entry ${i} has a bad path`);
    if (buf.subarray(nameAt + nameLength, next).some((b) => b !== 0)) throw invalid(`index: entry ${i} padding is not NUL`);
    const r = (k: number) => buf.readUInt32BE(o + k);
    entries[i] = {
      path,
      mode: r(24),
      oid: Buffer.from(buf.subarray(o + 40, o + 60)),
      stat: {
        ctimeSec: r(0),
        ctimeNsec: r(4),
        mtimeSec: r(8),
        mtimeNsec: r(12),
        dev: r(16),
        ino: r(20),
        uid: r(28),
        gid: r(32),
        size: r(36),
      },
      flags,
      extendedFlags,
    };
    o = next;
  }
  const entriesEnd = o;
  const extensions: { signature: string; data: Buffer }[] = [];
  while (o < end) {
    if (o + 8 > end) throw invalid('index: truncated extension');
    const length = buf.readUInt32BE(o + 4);
    if (length > end - o - 8) throw invalid('index: truncated extension');
    extensions.push({ signature: buf.toString('latin1', o, o + 4), data: Buffer.from(buf.subarray(o + 8, o + 8 + length)) });
    o += 8 + length;
  }
  return { version, entries, entriesEnd, extensions };
}

/**
 * A version 2 index straight from columns (the client's shared file table),
 * without an object per entry (100k entries: ~70 ms with one). Paths come in
 * index order from a table that was checked when decoded (encodeIndex checks
 * the order of entries given as objects); modes, empty paths and NULs are
 * checked again here because the result is what git trusts.
 */
export interface IndexColumns {
  count: number;
  /** Every path, concatenated; entry i is pathBytes[pathStarts[i], pathStarts[i + 1]). */
  pathBytes: Uint8Array;
  pathStarts: Uint32Array;
  modes: Uint32Array;
  /** count * 20 raw bytes. */
  oids: Uint8Array;
  /** count * 9 values, each the low 32 bits: ctimeSec ctimeNsec mtimeSec mtimeNsec dev ino uid gid size. */
  stats: Uint32Array;
  /** Each entry's whole size in bytes, so a non-empty multiple of 4 GiB is stored as git stores it. */
  sizes: Float64Array;
}

export function encodeIndexColumns(c: IndexColumns): Buffer {
  const { count, pathBytes, pathStarts, modes, oids, stats, sizes } = c;
  const bound = HEADER + 20 + count * (FIXED + 8) + (pathStarts[count]! - pathStarts[0]!);
  const buf = Buffer.alloc(bound); // zeroed: the NUL padding comes for free
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  dv.setUint32(0, SIGNATURE);
  dv.setUint32(4, 2);
  dv.setUint32(8, count);
  let o = HEADER;
  for (let i = 0; i < count; i++) {
    const start = pathStarts[i]!;
    const len = pathStarts[i + 1]! - start;
    const mode = modes[i]!;
    if (len <= 0) throw invalid(`index: entry ${i} has an empty path`);
    if (!MODES.has(mode)) throw invalid(`index: entry ${i} has mode ${mode.toString(8)}`);
    const s = i * 9;
    dv.setUint32(o, stats[s]!);
    dv.setUint32(o + 4, stats[s + 1]!);
    dv.setUint32(o + 8, stats[s + 2]!);
    dv.setUint32(o + 12, stats[s + 3]!);
    dv.setUint32(o + 16, stats[s + 4]!);
    dv.setUint32(o + 20, stats[s + 5]!);
    dv.setUint32(o + 24, mode);
    dv.setUint32(o + 28, stats[s + 6]!);
    dv.setUint32(o + 32, stats[s + 7]!);
    dv.setUint32(o + 36, stats[s + 8] === 0 && sizes[i]! > 0 ? 0x80000000 : stats[s + 8]!);
    for (let k = 0, from = i * 20; k < 20; k++) buf[o + 40 + k] = oids[from + k]!;
    dv.setUint16(o + 60, Math.min(len, NAME_MASK));
    for (let k = 0; k < len; k++) {
      const b = pathBytes[start + k]!;
      if (b === 0) throw invalid(`index: entry ${i} has a NUL byte in its path`);
      buf[o + FIXED + k] = b;
    }
    o += entryLength(len);
  }
  createHasher('sha1').update(buf.subarray(0, o)).digest().copy(buf, o);
  return buf.subarray(0, o + 20);
}
