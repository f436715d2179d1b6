/** Messages between the clone pipeline and its writer threads. */
import type { SharedTable } from './shared-table.js';

/** Sent once to every thread before any task: where to write and the shared table. */
export interface WorkerInit {
  kind: 'init';
  root: Uint8Array; // staging directory path + '/'
  table: SharedTable;
  /**
   * Editable clones record stat data for .git/index and check every file taken
   * from the archive against its blob id; files mode does neither.
   */
  editable: boolean;
}

export type WorkerTask =
  | {
      kind: 'pack';
      id: number;
      packPath: string;
      /** Flattened [offset, length, n, entry_1 .. entry_n] per blob, in pack order. */
      objects: Float64Array;
    }
  | {
      kind: 'chunk';
      id: number;
      data: Uint8Array; // compressed zstd frame, transferred
      chunkStart: number; // stream offset of the chunk's first byte
      rawSize: number;
      entries: Uint32Array; // entries with bytes in this chunk
      offsets: Float64Array; // their stream offsets
    }
  | { kind: 'empty'; id: number; entries: Uint32Array };

export interface WorkerResult {
  id: number;
  files: number;
  bytes: number;
  /** Parts of symlink targets that span chunks. */
  symlinkPieces: { entry: number; at: number; bytes: Uint8Array }[];
  /** Thread time spent per kind of work, in ms (for --bench). */
  ms: PhaseMs;
}

export interface PhaseMs {
  inflate: number; // zlib inflate (pack blobs) and zstd decompress (archive chunks)
  verify: number; // SHA-1 of blobs against their object ids
  write: number; // creating, writing and closing files, symlinks, stat
}

export function zeroMs(): PhaseMs {
  return { inflate: 0, verify: 0, write: 0 };
}

export interface WorkerFailure {
  id: number;
  error: string;
  code: 'integrity' | 'invalid' | 'internal';
  /** A file system error's errno code, call and path, so the main thread can report it as `io` (fs-errors.ts). */
  fs?: { errno: string; syscall: string; path?: string };
}
