/**
 * Writes the work tree: inflates blobs from HEAD packs (writer-pack.ts) or
 * decompresses archive chunks (writer-chunk.ts), and creates files with
 * synchronous fs calls (writer-entries.ts), the fastest way Node has to create
 * many files (measured ~100k files/s on tmpfs from two threads; fs.promises at
 * high concurrency is ~2.5x slower). Runs in writer threads (worker.ts) or, for
 * small clones, on the main thread (pool.ts). Directories already exist (made
 * once, up front); files are created with O_EXCL|O_NOFOLLOW, so nothing is ever
 * written through a symlink or over something that exists, and stat data comes
 * from the open descriptor.
 */
import { EntryWriter, TaskError } from './writer-entries.js';
import { packTask } from './writer-pack.js';
import { chunkTask, emptyTask } from './writer-chunk.js';
import { zeroMs, type WorkerInit, type WorkerResult, type WorkerTask } from './pool-types.js';

export { TaskError };

export interface TreeWriter {
  /** Run one task; throws TaskError for bad data. */
  run(task: WorkerTask): Promise<WorkerResult>;
}

export function createTreeWriter(init: WorkerInit): TreeWriter {
  const w = new EntryWriter(init.table, init.root, init.editable);
  return {
    async run(task: WorkerTask): Promise<WorkerResult> {
      w.ms = zeroMs();
      return task.kind === 'pack' ? packTask(w, task) : task.kind === 'chunk' ? chunkTask(w, task) : emptyTask(w, task);
    },
  };
}
