/**
 * Where each file's bytes sit in the archive stream. Entries with content
 * (everything but gitlinks) follow each other in table order; chunk k holds
 * stream bytes [starts[k], starts[k] + rawSize[k]).
 */
import { FLAG_CONVERTED, MODE_GITLINK, type TableEntry } from './filetable.js';
import type { ChunkRef, Manifest } from './manifest.js';

/** Stream offset of each entry (-1 for gitlinks, which have no content). */
export function streamOffsets(table: readonly TableEntry[]): number[] {
  const out = new Array<number>(table.length);
  let pos = 0;
  table.forEach((e, i) => {
    if (e.mode === MODE_GITLINK) {
      out[i] = -1;
    } else {
      out[i] = pos;
      pos += e.size;
    }
  });
  return out;
}

export function streamLength(table: readonly TableEntry[]): number {
  let n = 0;
  for (const e of table) if (e.mode !== MODE_GITLINK) n += e.size;
  return n;
}

export function chunkStarts(chunks: readonly ChunkRef[]): number[] {
  const out = new Array<number>(chunks.length);
  let pos = 0;
  chunks.forEach((c, i) => {
    out[i] = pos;
    pos += c.rawSize;
  });
  return out;
}

/** Index of the chunk containing stream byte `pos` (binary search). */
export function chunkAt(starts: readonly number[], pos: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Chunks [first, last] covering the non-empty range [start, start+size). */
export function chunkSpan(starts: readonly number[], start: number, size: number): [number, number] {
  return [chunkAt(starts, start), chunkAt(starts, start + size - 1)];
}

/** Indexes of the archive chunks holding converted files (editable clones need only those). */
export function chunksWithConverted(m: Manifest, table: readonly TableEntry[]): number[] {
  const starts = chunkStarts(m.archive.chunks);
  const offsets = streamOffsets(table);
  const out = new Set<number>();
  table.forEach((e, i) => {
    if (!(e.flags & FLAG_CONVERTED) || e.size === 0) return;
    const [first, last] = chunkSpan(starts, offsets[i]!, e.size);
    for (let c = first; c <= last; c++) out.add(c);
  });
  return [...out].sort((a, b) => a - b);
}
