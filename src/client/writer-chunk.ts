/**
 * Chunk tasks: check an archive chunk's declared size, decompress it, and
 * write the files (or the parts of files) it holds; and empty-file tasks.
 */
import { MODE_SYMLINK } from '../clonepack/filetable.js';
import { zstdSingleFrameSize } from '../clonepack/zstd-frame.js';
import { now, TaskError, type EntryWriter } from './writer-entries.js';
import type { WorkerResult, WorkerTask } from './pool-types.js';
import { loadZstd, type Decompress } from './zstd.js';

// zstd is loaded on first use: depth-1 clones rarely need it.
let decompress: Decompress | null = null;

export async function chunkTask(w: EntryWriter, task: Extract<WorkerTask, { kind: 'chunk' }>): Promise<WorkerResult> {
  const raw = await decompressChunk(w, task);
  const table = w.table;
  const chunkStart = task.chunkStart;
  const chunkEnd = chunkStart + task.rawSize;
  const symlinkPieces: WorkerResult['symlinkPieces'] = [];
  let files = 0;
  let bytes = 0;
  for (let k = 0; k < task.entries.length; k++) {
    const i = task.entries[k]!;
    const start = task.offsets[k]!;
    const end = start + table.sizes[i]!;
    const from = Math.max(start, chunkStart);
    const to = Math.min(end, chunkEnd);
    const piece = raw.subarray(from - chunkStart, to - chunkStart);
    bytes += piece.length;
    if (start >= chunkStart && end <= chunkEnd) {
      w.verifyFromArchive(i, piece);
      w.create(i, piece);
      files++;
    } else if (table.modes[i] === MODE_SYMLINK) {
      symlinkPieces.push({ entry: i, at: from - start, bytes: Buffer.from(piece) });
    } else {
      w.writePart(i, piece, from - start);
      if (w.lastPartWritten(i)) files++;
    }
  }
  return { id: task.id, files, bytes, symlinkPieces, ms: w.ms };
}

async function decompressChunk(w: EntryWriter, task: Extract<WorkerTask, { kind: 'chunk' }>): Promise<Buffer> {
  decompress ??= await loadZstd();
  const declared = zstdSingleFrameSize(task.data);
  if (declared === null) throw new TaskError('archive chunk is not one zstd frame that declares its size', 'integrity');
  if (declared !== task.rawSize) throw new TaskError(`archive chunk declares ${declared} bytes, the manifest says ${task.rawSize}`, 'integrity');
  let raw: Buffer;
  const t0 = now();
  try {
    raw = decompress(task.data);
  } catch (err) {
    throw new TaskError(`archive chunk does not decompress: ${(err as Error).message}`, 'integrity');
  }
  w.ms.inflate += now() - t0;
  if (raw.length !== task.rawSize) throw new TaskError(`archive chunk decompressed to ${raw.length} bytes, expected ${task.rawSize}`, 'integrity');
  return raw;
}

export function emptyTask(w: EntryWriter, task: Extract<WorkerTask, { kind: 'empty' }>): WorkerResult {
  const empty = new Uint8Array(0);
  for (const i of task.entries) {
    w.verifyFromArchive(i, empty);
    w.create(i, empty);
  }
  return { id: task.id, files: task.entries.length, bytes: 0, symlinkPieces: [], ms: w.ms };
}
