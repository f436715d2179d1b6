/**
 * Node built-ins loaded on first use. Under Bun, node:zlib and
 * node:worker_threads each cost ~5-10 ms of CPU to load, and most clones
 * never use them (zlib: only a small --depth 1 clone inflates HEAD packs;
 * worker_threads: only trees past 2000 files start writer threads), so they
 * must not be static imports on the client's path. createRequire keeps the
 * call sites synchronous.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

let zlib: typeof import('node:zlib') | null = null;
let workerThreads: typeof import('node:worker_threads') | null = null;
let childProcess: typeof import('node:child_process') | null = null;

export function lazyZlib(): typeof import('node:zlib') {
  return (zlib ??= require('node:zlib') as typeof import('node:zlib'));
}

export function lazyWorkerThreads(): typeof import('node:worker_threads') {
  return (workerThreads ??= require('node:worker_threads') as typeof import('node:worker_threads'));
}

/** Only a private repository's credential helper (`git credential`) needs it: ~2 ms of CPU to load under Bun. */
export function lazyChildProcess(): typeof import('node:child_process') {
  return (childProcess ??= require('node:child_process') as typeof import('node:child_process'));
}
