/**
 * `snapclone worker`: a build process without an HTTP API. It claims sync jobs from the shared
 * queue (PostgreSQL), builds them from its own mirrors into the shared artifact store, and
 * publishes their records. Its data dir (mirrors, scratch space, the bucket's disk cache) is
 * disposable: a fresh worker bootstraps a mirror from the store's history levels. A worker killed
 * at any instant loses no job (its lease expires and another worker takes the job over) and
 * publishes nothing partial (records are written only after the artifacts they name).
 */
import { prepareDataDir, lockDataDir } from './datadir.js';
import { openEngines, type Engines } from './engines.js';
import { startBuilds, type Builds } from './builds.js';
import { SyncService, type SyncOptions } from './sync.js';
import { SnapError } from '../util/errors.js';
import { log } from '../util/log.js';

const NEEDS_QUEUE = new SnapError('usage', 'snapclone worker needs the shared queue: set SNAPCLONE_DATABASE_URL=postgres://… (and SNAPCLONE_S3_BUCKET for artifacts shared across machines)');

export interface WorkerOptions {
  dataDir: string;
  /** Jobs run at once (default 1). */
  concurrency?: number;
  /** Lease of a claimed job, ms (default $SNAPCLONE_LEASE_SECONDS or 30 s). */
  leaseMs?: number;
  buildOptions?: Partial<SyncOptions>;
}

export interface RunningWorker {
  /** Claim nothing more, finish the running jobs, and release everything. */
  close(): Promise<void>;
}

export async function startWorker(opts: WorkerOptions): Promise<RunningWorker> {
  if (!process.env.SNAPCLONE_DATABASE_URL?.trim()) throw NEEDS_QUEUE; // before the data dir is touched
  prepareDataDir(opts.dataDir);
  const lock = lockDataDir(opts.dataDir);
  let engines: Engines | undefined;
  let builds: Builds | undefined;
  try {
    engines = await openEngines(opts.dataDir);
    if (!engines.postgres) throw NEEDS_QUEUE;
    const sync = new SyncService(opts.dataDir, engines.store, engines.meta, opts.buildOptions);
    builds = await startBuilds(engines, sync, { concurrency: opts.concurrency ?? 1, ...(opts.leaseMs ? { leaseMs: opts.leaseMs } : {}) });
  } catch (err) {
    await builds?.stop();
    await engines?.close();
    lock.release();
    throw err;
  }
  log.info(`snapclone worker running (data in ${opts.dataDir}, pid ${process.pid}; ${engines.describe}; ${opts.concurrency ?? 1} job(s) at once)`);
  let closed: Promise<void> | null = null;
  return {
    close() {
      closed ??= (async () => {
        await builds!.stop();
        await engines!.close();
        lock.release();
      })();
      return closed;
    },
  };
}
