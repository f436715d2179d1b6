/**
 * Where writer tasks run: a pool of writer threads, or (for small clones, where
 * a thread's 25-50 ms boot would cost more than the work) the main thread.
 * Threads can be started before there is work, so their boot overlaps the
 * network, and receive the staging root and shared table by an init message.
 * Tasks queue in order and go to the first idle thread; each thread runs one
 * task at a time with synchronous fs calls.
 */
import type { Worker } from 'node:worker_threads';
import { lazyWorkerThreads } from '../util/lazy-builtin.js';
import { availableParallelism } from 'node:os';
import type { SharedTable } from './shared-table.js';
import type { WorkerFailure, WorkerInit, WorkerResult, WorkerTask } from './pool-types.js';
import { SnapError } from '../util/errors.js';
import { createTreeWriter, TaskError, type TreeWriter } from './writer.js';

interface Pending {
  task: WorkerTask;
  transfer: ArrayBuffer[];
  resolve: (r: WorkerResult) => void;
  reject: (e: Error) => void;
}

/** Upper bound on threads: $SNAPCLONE_WORKERS, else one per CPU, at most 8. */
export function maxPoolSize(): number {
  const env = Number(process.env.SNAPCLONE_WORKERS);
  if (Number.isInteger(env) && env > 0) return Math.min(env, 64);
  return Math.max(1, Math.min(availableParallelism(), 8));
}

export class WriterPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: Pending[] = [];
  private readonly running = new Map<Worker, Pending>();
  private init: WorkerInit | null = null;
  private failed: Error | null = null;
  private inline: TreeWriter | null = null;
  private inlineTail: Promise<unknown> = Promise.resolve();

  constructor(size = 0) {
    this.grow(size);
  }

  /** Writer threads (0: tasks run on the main thread). */
  get size(): number {
    return this.workers.length;
  }

  /** Add threads up to `size` (never beyond maxPoolSize()). */
  grow(size: number): void {
    const target = Math.min(size, maxPoolSize());
    while (this.workers.length < target) {
      // From dist/src/client, or from a chunk of the front bundle in dist/src/cli (front-bundle.ts): the same file.
      const w = new (lazyWorkerThreads().Worker)(new URL('../client/worker.js', import.meta.url));
      w.on('message', (msg: WorkerResult | WorkerFailure) => this.onMessage(w, msg));
      w.on('error', (err) => this.onCrash(w, err));
      if (this.init) w.postMessage(this.init);
      this.workers.push(w);
      this.idle.push(w);
    }
    this.pump();
  }

  /**
   * Give every thread the staging root and the table; tasks start flowing after
   * this. With no threads started, tasks run on the main thread instead.
   */
  start(root: Buffer, table: SharedTable, editable: boolean): void {
    this.init = { kind: 'init', root, table, editable };
    if (this.workers.length === 0) this.inline = createTreeWriter(this.init);
    for (const w of this.workers) w.postMessage(this.init);
    this.pump();
  }

  run(task: WorkerTask, transfer: ArrayBuffer[] = []): Promise<WorkerResult> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.inline) {
      const writer = this.inline;
      const result = this.inlineTail.then(() =>
        writer.run(task).catch((err: unknown) => {
          throw err instanceof TaskError ? new SnapError(err.code, err.message) : err;
        }),
      );
      this.inlineTail = result.catch(() => {});
      return result;
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ task, transfer, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (!this.init) return;
    while (this.idle.length && this.queue.length) {
      const w = this.idle.pop()!;
      const p = this.queue.shift()!;
      this.running.set(w, p);
      w.postMessage(p.task, p.transfer);
    }
  }

  private onMessage(w: Worker, msg: WorkerResult | WorkerFailure): void {
    const p = this.running.get(w);
    this.running.delete(w);
    this.idle.push(w);
    if (p) {
      if ('error' in msg) p.reject(msg.fs ? Object.assign(new Error(msg.error), { code: msg.fs.errno, syscall: msg.fs.syscall, path: msg.fs.path }) : new SnapError(msg.code, msg.error));
      else p.resolve(msg);
    }
    this.pump();
  }

  private onCrash(w: Worker, err: Error): void {
    this.failed = new SnapError('internal', `writer thread failed: ${err.message}`);
    this.running.get(w)?.reject(this.failed);
    this.running.delete(w);
    for (const p of this.queue.splice(0)) p.reject(this.failed);
  }

  private closing: Promise<void> | null = null;

  /** Stop every thread; resolves once all have stopped (no file is written after). Idempotent. */
  close(): Promise<void> {
    this.closing ??= Promise.all(this.workers.map((w) => w.terminate())).then(() => {});
    return this.closing;
  }
}
