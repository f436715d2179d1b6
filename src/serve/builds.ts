/**
 * Where a process's builds run. Embedded (SQLite): the in-process LocalJobQueue. Shared
 * (PostgreSQL): the database's jobs table, claimed under leases by lease workers, in
 * `snapclone worker` and in `snapclone serve` unless it was started with --no-builds.
 */
import { hostname } from 'node:os';
import type { JobQueue, JobRunner } from '../queue/job-queue.js';
import { LocalJobQueue, INTERRUPTED } from '../queue/local/local-queue.js';
import { PgJobQueue } from '../queue/postgres/pg-queue.js';
import { runLeaseWorkers } from '../queue/lease-worker.js';
import type { Engines } from './engines.js';
import type { SyncService } from './sync.js';
import { RecheckAfterBuild } from './recheck.js';
import { log } from '../util/log.js';
import { recordBuild } from './metrics.js';
import { SnapError } from '../util/errors.js';

export interface Builds {
  queue: JobQueue;
  recheck: RecheckAfterBuild;
  /** Stop claiming or starting jobs, and wait for the running ones. */
  stop(): Promise<void>;
}

export interface BuildOptions {
  /** Jobs run at once by this process (0: none: --no-builds). */
  concurrency: number;
  /** Lease of a claimed job (shared queue), ms; heartbeats renew it. */
  leaseMs?: number;
}

export async function startBuilds(engines: Engines, sync: SyncService, opts: BuildOptions): Promise<Builds> {
  const checks = { meta: engines.meta, mirrorDir: (repo: string) => sync.mirrorDir(repo), enqueue: (req: Parameters<JobQueue['enqueue']>[0]) => queue.enqueue(req) };
  const recheck = new RecheckAfterBuild(checks);
  const runner = recheck.wrap(jobRunner(sync));
  let queue: JobQueue;
  if (!engines.postgres) {
    if (opts.concurrency < 1) throw new SnapError('usage', 'building nowhere: --no-builds needs SNAPCLONE_DATABASE_URL (a shared queue that `snapclone worker` processes take jobs from)');
    const local = new LocalJobQueue(engines.meta, runner, { concurrency: opts.concurrency });
    queue = local;
    const dead = await local.recover();
    if (dead.length) log.warn(`marked ${dead.length} job(s) a previous server left unfinished as failed (${INTERRUPTED}): ${dead.map((j) => j.id).join(', ')}`);
    return {
      queue,
      recheck,
      async stop() {
        const rechecks = recheck.stop(); // before the queue closes: nothing new is queued
        await local.close();
        await rechecks;
      },
    };
  }
  const pg = new PgJobQueue(engines.postgres);
  queue = pg;
  const workers =
    opts.concurrency > 0
      ? runLeaseWorkers({ queue: pg, runner, workerId: `${hostname()}:${process.pid}`, concurrency: opts.concurrency, leaseMs: opts.leaseMs ?? leaseMsFromEnv() })
      : null;
  return {
    queue,
    recheck,
    async stop() {
      const rechecks = recheck.stop();
      await workers?.stop();
      await rechecks;
      await pg.close();
    },
  };
}

/** SNAPCLONE_LEASE_SECONDS (default 30): how long a worker that stops heartbeating keeps its job. */
export function leaseMsFromEnv(env = process.env): number {
  const raw = env.SNAPCLONE_LEASE_SECONDS;
  const s = raw === undefined || raw === '' ? 30 : Number(raw);
  if (!Number.isFinite(s) || s < 1 || s > 3600) throw new SnapError('usage', `SNAPCLONE_LEASE_SECONDS must be from 1 to 3600, got ${raw}`);
  return Math.round(s * 1000);
}

export function jobRunner(sync: SyncService): JobRunner {
  return async (job, report, fence) => {
    const t0 = Date.now();
    log.info(`job ${job.id}: sync ${job.repo}${job.ref ? ` ${job.ref}` : ''}`);
    try {
      const result = await sync.run(
        job,
        (phase) => {
          log.debug(`job ${job.id}: ${phase}`);
          report(phase);
        },
        fence,
      );
      log.debug(`job ${job.id}: succeeded in ${Date.now() - t0} ms`);
      recordBuild('succeeded', (Date.now() - t0) / 1000);
      return result;
    } catch (err) {
      recordBuild('failed', (Date.now() - t0) / 1000);
      log.error(`job ${job.id} failed after ${Date.now() - t0} ms: ${(err as Error).message}`);
      log.stack(err);
      throw err;
    }
  };
}
