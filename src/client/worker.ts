/**
 * A writer thread: receives the staging root and shared table once, then runs
 * tasks with a TreeWriter (writer.ts) and reports results or failures.
 */
import { parentPort } from 'node:worker_threads';
import { createTreeWriter, TaskError, type TreeWriter } from './writer.js';
import type { WorkerFailure, WorkerInit, WorkerTask } from './pool-types.js';

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
    const fs = !(err instanceof TaskError) && e.code && e.syscall ? { errno: e.code, syscall: e.syscall, ...(e.path !== undefined ? { path: String(e.path) } : {}) } : undefined;
    const failure: WorkerFailure = { id: msg.id, error: e.message, code, ...(fs ? { fs } : {}) };
    parentPort!.postMessage(failure);
  }
});
