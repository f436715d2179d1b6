/**
 * The decoded file table in SharedArrayBuffers, so worker threads read paths,
 * modes and sizes without copies, and write each file's stat data straight
 * into a shared array that the main thread turns into .git/index.
 */
import type { TableEntry } from '../clonepack/filetable.js';

/** Stat fields stored per entry, all truncated to 32 bits as the index stores them. */
export const STAT_FIELDS = 9; // ctimeSec, ctimeNsec, mtimeSec, mtimeNsec, dev, ino, uid, gid, size

export interface SharedTable {
  count: number;
  pathBytes: Uint8Array; // all paths, concatenated
  pathStarts: Uint32Array; // count + 1 offsets into pathBytes
  modes: Uint32Array;
  sizes: Float64Array;
  oids: Uint8Array; // count * 20
  flags: Uint8Array; // file table flags (FLAG_CONVERTED)
  stats: Uint32Array; // count * STAT_FIELDS, filled by writers
  /**
   * Per entry written in parts (its bytes span archive chunks): parts not yet
   * written, set before the writers start (setParts). The writer that writes
   * the last part finishes the file (checks it, takes its stat data), in
   * parallel with the other chunks instead of after all of them.
   */
  parts: Int32Array;
}

export function shareTable(entries: readonly TableEntry[]): SharedTable {
  const count = entries.length;
  let total = 0;
  for (const e of entries) total += e.path.length;
  const pathBytes = new Uint8Array(new SharedArrayBuffer(Math.max(1, total)));
  const pathStarts = new Uint32Array(new SharedArrayBuffer(4 * (count + 1)));
  const modes = new Uint32Array(new SharedArrayBuffer(4 * Math.max(1, count)));
  const sizes = new Float64Array(new SharedArrayBuffer(8 * Math.max(1, count)));
  const oids = new Uint8Array(new SharedArrayBuffer(20 * Math.max(1, count)));
  const flags = new Uint8Array(new SharedArrayBuffer(Math.max(1, count)));
  const stats = new Uint32Array(new SharedArrayBuffer(4 * STAT_FIELDS * Math.max(1, count)));
  const parts = new Int32Array(new SharedArrayBuffer(4 * Math.max(1, count)));
  let at = 0;
  entries.forEach((e, i) => {
    pathStarts[i] = at;
    pathBytes.set(e.path, at);
    at += e.path.length;
    modes[i] = e.mode;
    sizes[i] = e.size;
    oids.set(e.oid, i * 20);
    flags[i] = e.flags;
  });
  pathStarts[count] = at;
  return { count, pathBytes, pathStarts, modes, sizes, oids, flags, stats, parts };
}

/** How many chunk tasks write a part of each entry that spans chunks (perChunk: entries per chunk, as the tasks get them). */
export function setParts(t: SharedTable, perChunk: Map<number, number[]>): void {
  const seen = new Uint32Array(t.count);
  for (const entries of perChunk.values()) for (const i of entries) seen[i]!++;
  for (let i = 0; i < t.count; i++) if (seen[i]! > 1) t.parts[i] = seen[i]!;
}

export function entryPath(t: SharedTable, i: number): Uint8Array {
  return t.pathBytes.subarray(t.pathStarts[i]!, t.pathStarts[i + 1]!);
}

/** Record stat data (from fstat/lstat with bigint: true) the way git's index stores it. */
export function recordStat(t: SharedTable, i: number, st: import('node:fs').BigIntStats): void {
  const o = i * STAT_FIELDS;
  const s = t.stats;
  s[o] = Number(st.ctimeNs / 1_000_000_000n);
  s[o + 1] = Number(st.ctimeNs % 1_000_000_000n);
  s[o + 2] = Number(st.mtimeNs / 1_000_000_000n);
  s[o + 3] = Number(st.mtimeNs % 1_000_000_000n);
  s[o + 4] = Number(st.dev & 0xffffffffn);
  s[o + 5] = Number(st.ino & 0xffffffffn);
  s[o + 6] = Number(st.uid & 0xffffffffn);
  s[o + 7] = Number(st.gid & 0xffffffffn);
  s[o + 8] = Number(st.size & 0xffffffffn);
}
