/**
 * The file table: one record per .git/index entry of the built commit, in index
 * order (byte-wise path order). It tells the client everything it needs to write
 * the work tree and .git/index without running git:
 *
 *   - mode, object id and work-tree size of each entry;
 *   - where the blob sits in the HEAD packs (pack number, offset, length), for
 *     editable clones that inflate the work tree from the packs;
 *   - whether checkout transforms the blob (.gitattributes eol/ident/encoding),
 *     in which case the work-tree bytes come from the archive instead.
 *
 * The archive is implicit: every entry with content (regular files and symlinks)
 * occupies `size` bytes of the archive stream, in table order.
 *
 * Binary layout, little-endian (then zstd-compressed as one artifact):
 *   header: "SCFT" u32 version(1) u32 count
 *   entry:  u32 mode, 20 bytes oid, u64 size, u8 flags, u32 pack (0xffffffff = none),
 *           u64 packOffset, u64 packLength, u32 pathLength, path bytes
 */
import { invalid } from '../util/errors.js';
import { pathProblem, shownPath } from './paths.js';

export const MODE_FILE = 0o100644;
export const MODE_EXEC = 0o100755;
export const MODE_SYMLINK = 0o120000;
export const MODE_GITLINK = 0o160000;
const ALLOWED_MODES = new Set([MODE_FILE, MODE_EXEC, MODE_SYMLINK, MODE_GITLINK]);

export const FLAG_CONVERTED = 1;
export const NO_PACK = 0xffffffff;

const MAGIC = 0x54464353; // "SCFT" read as little-endian u32
const VERSION = 1;
const HEADER = 12;
const FIXED = 4 + 20 + 8 + 1 + 4 + 8 + 8 + 4; // 57

export interface TableEntry {
  path: Buffer;
  mode: number;
  oid: Buffer; // 20 raw bytes
  size: number; // bytes in the work tree (after checkout conversion); 0 for gitlinks
  flags: number;
  pack: number; // index into manifest.headPacks, or NO_PACK
  packOffset: number;
  packLength: number;
}

export function hasContent(e: TableEntry): boolean {
  return e.mode !== MODE_GITLINK;
}

export function isConverted(e: TableEntry): boolean {
  return (e.flags & FLAG_CONVERTED) !== 0;
}

export function encodeTable(entries: readonly TableEntry[]): Buffer {
  let total = HEADER;
  for (const e of entries) total += FIXED + e.path.length;
  const buf = Buffer.allocUnsafe(total);
  buf.writeUInt32LE(MAGIC, 0);
  buf.writeUInt32LE(VERSION, 4);
  buf.writeUInt32LE(entries.length, 8);
  let o = HEADER;
  for (const e of entries) {
    buf.writeUInt32LE(e.mode, o);
    e.oid.copy(buf, o + 4);
    writeU64(buf, o + 24, e.size);
    buf.writeUInt8(e.flags, o + 32);
    buf.writeUInt32LE(e.pack, o + 33);
    writeU64(buf, o + 37, e.packOffset);
    writeU64(buf, o + 45, e.packLength);
    buf.writeUInt32LE(e.path.length, o + 53);
    e.path.copy(buf, o + FIXED);
    o += FIXED + e.path.length;
  }
  return buf;
}

function writeU64(buf: Buffer, at: number, v: number): void {
  buf.writeUInt32LE(v % 2 ** 32, at);
  buf.writeUInt32LE(Math.floor(v / 2 ** 32), at + 4);
}

function readU64(buf: Buffer, at: number): number {
  const v = buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * 2 ** 32;
  if (!Number.isSafeInteger(v)) throw invalid('file table: number out of range');
  return v;
}

/**
 * Decode and validate an untrusted table. `packCount` is the number of HEAD packs
 * in the manifest. Checks: layout, modes, paths (see paths.ts), strict index order
 * (which also rules out duplicates), and that no entry lives below another
 * non-directory entry (so nothing is ever written through a symlink or a file).
 */
export function decodeTable(buf: Buffer, expectedCount: number, packCount: number): TableEntry[] {
  return decodeTableAndDirs(buf, expectedCount, packCount).entries;
}

/** decodeTable, also returning the directories to create (see tableDirectories). */
export function decodeTableAndDirs(buf: Buffer, expectedCount: number, packCount: number): { entries: TableEntry[]; dirs: Buffer[] } {
  if (buf.length < HEADER || buf.readUInt32LE(0) !== MAGIC) throw invalid('file table: bad magic');
  if (buf.readUInt32LE(4) !== VERSION) throw invalid(`file table: unsupported version ${buf.readUInt32LE(4)}`);
  const count = buf.readUInt32LE(8);
  if (count !== expectedCount) throw invalid(`file table: ${count} entries, manifest says ${expectedCount}`);
  // Each entry needs at least FIXED+1 bytes: reject impossible counts before allocating.
  if (count * (FIXED + 1) > buf.length - HEADER) throw invalid('file table: truncated');
  const entries: TableEntry[] = new Array(count);
  // One private copy of the input; entries hold views into it (not a copy per
  // entry: a table can hold millions), and the caller's buffer stays theirs.
  buf = Buffer.from(buf);
  let o = HEADER;
  for (let i = 0; i < count; i++) {
    if (o + FIXED > buf.length) throw invalid('file table: truncated');
    const mode = buf.readUInt32LE(o);
    if (!ALLOWED_MODES.has(mode)) throw invalid(`file table: entry ${i} has mode ${mode.toString(8)}, not 100644/100755/120000/160000`);
    const oid = buf.subarray(o + 4, o + 24);
    const size = readU64(buf, o + 24);
    const flags = buf.readUInt8(o + 32);
    const pack = buf.readUInt32LE(o + 33);
    const packOffset = readU64(buf, o + 37);
    const packLength = readU64(buf, o + 45);
    const pathLength = buf.readUInt32LE(o + 53);
    if (o + FIXED + pathLength > buf.length) throw invalid('file table: truncated path');
    const path = buf.subarray(o + FIXED, o + FIXED + pathLength);
    o += FIXED + pathLength;
    const problem = pathProblem(path);
    if (problem) throw invalid(`file table: entry ${i}: ${problem}`);
    if ((flags & ~FLAG_CONVERTED) !== 0) throw invalid(`file table: entry ${i} has unknown flags`);
    if (mode === MODE_GITLINK) {
      if (size !== 0 || flags !== 0 || pack !== NO_PACK) throw invalid(`file table: gitlink entry ${i} carries content`);
    } else if (pack !== NO_PACK) {
      if (pack >= packCount) throw invalid(`file table: entry ${i} names HEAD pack ${pack} of ${packCount}`);
      if (packLength < 2) throw invalid(`file table: entry ${i} has an empty pack slice`);
    } else if (packCount > 0) {
      throw invalid(`file table: entry ${i} has no pack location`);
    }
    if (mode === MODE_SYMLINK && size > 4096) throw invalid(`file table: symlink entry ${i} target is too long`);
    entries[i] = { path, mode, oid, size, flags, pack, packOffset, packLength };
  }
  if (o !== buf.length) throw invalid('file table: trailing bytes');
  const dirs = tableDirectories(entries); // throws if out of order, or if an entry lies below a file, symlink or gitlink
  return { entries, dirs };
}

/**
 * Every directory the work tree needs, parents first: the ancestors of all
 * entries, plus gitlinks (which check out as empty directories). Throws if the
 * entries are not in strict index order (byte order, no repeats), or if a
 * directory is also a leaf entry, i.e. some entry would be written through a
 * file or symlink. In index order the entries below a directory are
 * contiguous: so the directories an entry shares with any earlier one are
 * those it shares with the previous one, and only deeper ones are new.
 * Work and memory stay linear in the table's bytes (keeping every ancestor as a
 * string key was quadratic in path depth: 800 KB of deep paths took 879 MiB).
 */
export function tableDirectories(entries: readonly TableEntry[]): Buffer[] {
  const ancestors: Buffer[] = [];
  // The lengths of the earlier entries that are byte prefixes of the previous
  // entry (itself included), shortest first. In index order an entry that an
  // entry lies below is a prefix of every entry between the two, so these are
  // the only candidates: one common-prefix scan per entry, no search.
  const prefixes: number[] = [];
  let prev: Buffer = EMPTY;
  for (let i = 0; i < entries.length; i++) {
    const p = entries[i]!.path;
    const m = commonPrefixLength(prev, p);
    // p > prev, decided where they first differ (Buffer.compare per entry cost more, ~70 ns each under Bun).
    if (i > 0 && (m === p.length || (m < prev.length && prev[m]! > p[m]!))) throw invalid(`file table: entry ${i} is out of index order or repeated`);
    while (prefixes.length > 0 && prefixes[prefixes.length - 1]! > m) prefixes.pop();
    // A deeper prefix was checked against a shallower one when it came: only the deepest can be p's ancestor now.
    const deepest = prefixes.length > 0 ? prefixes[prefixes.length - 1]! : -1;
    if (deepest >= 0 && p[deepest] === SLASH) throw invalid(`file table: an entry lies below the non-directory entry ${shownPath(p.subarray(0, deepest))}`);
    prefixes.push(p.length);
    // Directories shared with prev end at a slash of both, before they first differ.
    const shared = m > 0 ? Math.max(0, p.lastIndexOf(SLASH, m - 1)) : 0;
    const dir = Math.max(0, p.lastIndexOf(SLASH));
    for (let end = dir; end > shared; end = p.lastIndexOf(SLASH, end - 1)) ancestors.push(p.subarray(0, end));
    prev = p;
  }
  // Index order is not quite directory order ("a-b/x" < "a/y" but "a" < "a-b"): sort.
  ancestors.sort(Buffer.compare);
  const gitlinks = entries.filter((e) => e.mode === MODE_GITLINK).map((e) => e.path);
  return gitlinks.length ? [...ancestors, ...gitlinks].sort(Buffer.compare) : ancestors;
}

const SLASH = 0x2f;
const EMPTY = Buffer.alloc(0);

/** How many leading bytes a and b share. */
function commonPrefixLength(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  let m = 0;
  while (m < n && a[m] === b[m]) m++;
  return m;
}
