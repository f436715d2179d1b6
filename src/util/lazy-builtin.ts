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

export function lazyZlib(): typeof import('node:zlib') {
  return (zlib ??= require('node:zlib') as typeof import('node:zlib'));
}

export function lazyWorkerThreads(): typeof import('node:worker_threads') {
  return (workerThreads ??= require('node:worker_threads') as typeof import('node:worker_threads'));
}
