/**
 * A writer thread: receives the staging root and shared table once, then runs
 * tasks with a TreeWriter (writer.ts) and reports results or failures.
 */
import { parentPort } from 'node:worker_threads';
import { createTreeWriter, TaskError, type TreeWriter } from './writer.js';
import type { WorkerInit, WorkerTask } from './pool-types.js';

let writer: TreeWriter | null = null;

parentPort!.on('message', async (msg: WorkerTask | WorkerInit) => {
  if (msg.kind === 'init') {
    writer = createTreeWriter(msg);
    return;
  }
  try {
    parentPort!.postMessage(await writer!.run(msg));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const code = err instanceof TaskError ? err.code : 'internal';
    parentPort!.postMessage({ id: msg.id, error: e.code ? `${e.code}: ${e.message}` : e.message, code });
  }
});
