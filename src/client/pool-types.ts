/** Messages between the clone pipeline and its writer threads. */
import type { SharedTable } from './shared-table.js';

/** Sent once to every thread before any task: where to write and the shared table. */
export interface WorkerInit {
  kind: 'init';
  root: Uint8Array; // staging directory path + '/'
  table: SharedTable;
  /** Record stat data for .git/index (editable clones); files mode skips the fstat. */
  wantStats: boolean;
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
  /** Files this task wrote only part of (they span chunks). */
  partial: number[];
  /** Parts of symlink targets that span chunks. */
  symlinkPieces: { entry: number; at: number; bytes: Uint8Array }[];
}

export interface WorkerFailure {
  id: number;
  error: string;
  code: 'integrity' | 'invalid' | 'internal';
}
