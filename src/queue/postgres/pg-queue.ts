/**
 * The build queue on PostgreSQL, for a farm of workers in any number of processes.
 * Jobs live in the metadata store's `jobs` table (metadata/postgres/ creates it). Workers
 * claim a job under a lease (a random token and an expiry, both on the database's clock,
 * so workers' clocks never matter), keep it alive with heartbeats, and finish it; every
 * write by a holder names its token, so a worker that lost its lease (paused, partitioned,
 * presumed dead and reclaimed) can no longer change the job. Duplicate requests coalesce on
 * the partial unique index `jobs_one_queued`: one queued job per (repo, ref), which may wait
 * behind a running one. At most one job per repository runs at a time, across all workers.
 */
import { randomUUID } from 'node:crypto';
import type { Sql, TransactionSql } from 'postgres';
import type { JobRecord, JobState } from '../../metadata/metadata-store.js';
import { gcClaimAllowed, jobFromRow, type JobRow, type PostgresMetadataStore } from '../../metadata/postgres/pg-store.js';
import type { EnqueueRequest, Lease, LeasedQueue, QueueStats } from '../job-queue.js';
import { SnapError, invalid, type ErrorCode } from '../../util/errors.js';
import { log } from '../../util/log.js';

export interface PgJobQueueOptions {
  /** Claims a job may have whose lease then expires before it is given up as 'dead' (default 3). */
  maxAttempts?: number;
}

/** One channel for every wake-up: 'queued' when a job is added, 'done:<id>' when one finishes. */
const CHANNEL = 'snapclone_jobs';
/** First key of the advisory locks that serialize claims per repository (the second is the repo's hash). */
const REPO_LOCK_CLASS = 0x736e6170; // "snap"
/** How often wait() looks at a job's row when no notification comes (the listener may be reconnecting). */
const WAIT_POLL_MS = 250;
/** Candidates one claim looks at before giving up for this round (each skipped repo is busy). */
const CLAIM_TRIES = 20;

export class PgJobQueue implements LeasedQueue {
  readonly #sql: Sql<any>;
  readonly #maxAttempts: number;
  /** Callbacks woken by any notification on CHANNEL (waiters re-check the database themselves). */
  readonly #wakers = new Set<(payload: string) => void>();
  #listening: Promise<{ unlisten(): Promise<void> } | null> | null = null;
  #closed = false;

  constructor(meta: PostgresMetadataStore, options: PgJobQueueOptions = {}) {
    const maxAttempts = options.maxAttempts ?? 3;
    if (!Number.isSafeInteger(maxAttempts) || maxAttempts < 1) {
      throw invalid(`queue maxAttempts must be a positive integer, got ${maxAttempts}`);
    }
    this.#sql = meta.sql; // the store's pool: the jobs table is the store's
    this.#maxAttempts = maxAttempts;
  }

  /**
   * Queue a sync, or join the queued twin. The insert and the conflict are one statement on the
   * partial unique index, so concurrent enqueues from any number of connections leave one queued job.
   */
  async enqueue(req: EnqueueRequest): Promise<JobRecord> {
    if (this.#closed) throw new SnapError('internal', 'job queue is closed');
    const sql = this.#sql;
    // The twin found by the conflict may be claimed before we read it: then insert again.
    for (let attempt = 0; attempt < 10; attempt++) {
      const inserted = await sql`
        WITH ins AS (
          INSERT INTO jobs (repo, kind, ref, state, phase, created_at, attempts)
          VALUES (${req.repo}, 'sync', ${req.ref}, 'queued', 'queued', ${nowMs(sql)}, 0)
          ON CONFLICT (repo, (coalesce(ref, ''))) WHERE state = 'queued' DO NOTHING
          RETURNING *
        )
        SELECT ins.*, pg_notify(${CHANNEL}, 'queued')::text AS notified FROM ins`;
      if (inserted.length > 0) return jobFromRow(inserted[0]! as JobRow);
      const twin = await sql`
        SELECT * FROM jobs
        WHERE repo = ${req.repo} AND coalesce(ref, '') = ${req.ref ?? ''} AND state = 'queued'`;
      if (twin.length > 0) return jobFromRow(twin[0]! as JobRow);
    }
    throw new SnapError('conflict', `could not queue a job for ${req.repo}: its queued job kept being claimed`);
  }

  /**
   * Claim the oldest runnable job: queued, or running under an expired lease (a reclaim), in a
   * repository with no other live job, and the oldest open one of its repository. One transaction: expired jobs out of attempts become 'dead';
   * the candidate row is locked FOR UPDATE SKIP LOCKED (concurrent claimers take different rows),
   * and its repository's advisory lock is taken, so two claimers never start two jobs of one repo.
   */
  async claim(workerId: string, leaseMs: number): Promise<Lease | null> {
    checkLeaseMs(leaseMs);
    if (this.#closed) return null;
    const max = this.#maxAttempts;
    const token = randomUUID();
    return this.#sql.begin(async (tx) => {
      // No job starts during a GC delete phase; the share lock on gc_state's row is held to the
      // commit, which orders this claim against GC's flag (metadata/postgres/pg-store.ts gcBeginDelete).
      if (!(await gcClaimAllowed(tx))) return null;
      // Dead letters first: a job whose every attempt's worker vanished is not tried again. Rows
      // another claimer has locked are skipped (it will see them, or the next claim will).
      await tx`
        WITH dead AS (
          UPDATE jobs SET state = 'dead', finished_at = ${nowMs(tx)},
            error = 'lease expired ' || attempts || ' times: the workers running it stopped answering',
            error_code = 'build-failed', lease_token = NULL, lease_until = NULL
          WHERE id IN (
            SELECT id FROM jobs
            WHERE state = 'running' AND lease_until < ${nowMs(tx)} AND attempts >= ${max}
            FOR UPDATE SKIP LOCKED)
          RETURNING id
        )
        SELECT pg_notify(${CHANNEL}, 'done:' || id)::text FROM dead`;
      const skipped: string[] = [];
      for (let i = 0; i < CLAIM_TRIES; i++) {
        const candidates = await tx`
          SELECT id, repo FROM jobs j
          WHERE (j.state = 'queued' OR (j.state = 'running' AND j.lease_until < ${nowMs(tx)} AND j.attempts < ${max}))
            AND NOT (j.repo = ANY(${skipped}::text[]))
            AND NOT EXISTS (
              -- Another job of the repo runs under a live lease, or an older one waits (repos run in order).
              SELECT 1 FROM jobs r
              WHERE r.repo = j.repo AND r.id <> j.id AND r.state IN ('queued', 'running')
                AND (r.id < j.id OR (r.state = 'running' AND r.lease_until >= ${nowMs(tx)})))
          ORDER BY j.id
          LIMIT 1
          FOR UPDATE SKIP LOCKED`;
        if (candidates.length === 0) return null;
        const id = Number(candidates[0]!.id);
        const repo = String(candidates[0]!.repo);
        const [lock] = await tx`SELECT pg_try_advisory_xact_lock(${REPO_LOCK_CLASS}, hashtext(${repo})) AS ok`;
        // Check again under the lock, in a new snapshot: a claim of another job of this repo may have
        // committed after the candidate query's snapshot was taken.
        const busy =
          lock!.ok === true &&
          (await tx`
            SELECT 1 FROM jobs
            WHERE repo = ${repo} AND id <> ${id} AND state = 'running' AND lease_until >= ${nowMs(tx)}
            LIMIT 1`).length > 0;
        if (lock!.ok !== true || busy) {
          skipped.push(repo);
          continue;
        }
        const claimed = await tx`
          UPDATE jobs SET state = 'running', phase = 'starting', attempts = attempts + 1,
            lease_owner = ${workerId}, lease_token = ${token}, lease_until = ${nowMs(tx)} + ${leaseMs},
            started_at = ${nowMs(tx)}, error = NULL, error_code = NULL
          WHERE id = ${id}
          RETURNING *`;
        return { job: jobFromRow(claimed[0]! as JobRow), token };
      }
      return null;
    });
  }

  async heartbeat(lease: Lease, leaseMs: number, phase?: string): Promise<boolean> {
    checkLeaseMs(leaseMs);
    const sql = this.#sql;
    const rows = await sql`
      UPDATE jobs SET lease_until = ${nowMs(sql)} + ${leaseMs}, phase = coalesce(${phase ?? null}::text, phase)
      WHERE id = ${lease.job.id} AND lease_token = ${lease.token} AND state = 'running'
      RETURNING id`;
    return rows.length > 0;
  }

  async complete(lease: Lease, result: { commit: string | null }): Promise<boolean> {
    const sql = this.#sql;
    return this.#finish(sql`
      UPDATE jobs SET state = 'succeeded', phase = 'done', commit_oid = ${result.commit},
        finished_at = ${nowMs(sql)}, lease_token = NULL, lease_until = NULL
      WHERE id = ${lease.job.id} AND lease_token = ${lease.token} AND state = 'running'
      RETURNING id`);
  }

  async fail(lease: Lease, error: string, code: ErrorCode | null): Promise<boolean> {
    const sql = this.#sql;
    // The phase stays: "failed while packing history" says where.
    return this.#finish(sql`
      UPDATE jobs SET state = 'failed', error = ${error}, error_code = ${code},
        finished_at = ${nowMs(sql)}, lease_token = NULL, lease_until = NULL
      WHERE id = ${lease.job.id} AND lease_token = ${lease.token} AND state = 'running'
      RETURNING id`);
  }

  /** Run a holder's final update; on success tell waiters (and idle workers: the repo is free again). */
  async #finish(update: ReturnType<Sql<any>>): Promise<boolean> {
    const sql = this.#sql;
    const rows = await sql`WITH done AS (${update}) SELECT id, pg_notify(${CHANNEL}, 'done:' || id)::text FROM done`;
    return rows.length > 0;
  }

  async wait(id: number): Promise<JobRecord> {
    for (;;) {
      if (this.#closed) throw new SnapError('internal', 'job queue is closed');
      const rows = await this.#sql`SELECT * FROM jobs WHERE id = ${id}`;
      if (rows.length === 0) throw new SnapError('not-found', `job ${id} not found`);
      const job = jobFromRow(rows[0]! as JobRow);
      if (isFinished(job.state)) return job;
      await this.#wake(WAIT_POLL_MS, (payload) => payload === `done:${id}`);
    }
  }

  waitForWork(ms: number, signal?: AbortSignal): Promise<void> {
    return this.#wake(ms, () => true, signal);
  }

  /** Resolve on a matching notification, after `ms`, on abort or on close, whichever comes first. */
  #wake(ms: number, matches: (payload: string) => boolean, signal?: AbortSignal): Promise<void> {
    if (this.#closed || signal?.aborted) return Promise.resolve();
    this.#listen();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wakers.delete(waker);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const waker = (payload: string): void => {
        if (payload === '' || matches(payload)) done();
      };
      const timer = setTimeout(done, ms);
      this.#wakers.add(waker);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Start listening once; without it waiters still poll, so a failure only costs latency. */
  #listen(): void {
    if (this.#listening) return;
    const wakeAll = (payload: string): void => {
      for (const w of [...this.#wakers]) w(payload);
    };
    this.#listening = this.#sql.listen(CHANNEL, wakeAll).catch((err: unknown) => {
      log.warn(`job queue: cannot listen for notifications, polling instead: ${(err as Error).message}`);
      this.#listening = null;
      return null;
    });
  }

  async stats(): Promise<QueueStats> {
    const [row] = await this.#sql`
      SELECT
        count(*) FILTER (WHERE state = 'queued') AS queued,
        count(*) FILTER (WHERE state = 'running') AS running,
        count(*) FILTER (WHERE state = 'dead') AS dead,
        ${nowMs(this.#sql)} - min(created_at) FILTER (WHERE state = 'queued') AS oldest_age
      FROM jobs WHERE state IN ('queued', 'running', 'dead')`;
    // The age is the database's (its clock stamped created_at), carried over to this one's clock.
    return {
      queued: Number(row!.queued),
      running: Number(row!.running),
      dead: Number(row!.dead),
      oldestQueuedAt: row!.oldest_age === null ? null : Date.now() - Number(row!.oldest_age),
    };
  }

  /**
   * Stop queueing and wake every waiter (their wait() then rejects). Jobs are not this object's to
   * finish: workers hold them (lease-worker.ts stops them). The connection pool is the store's to end.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of [...this.#wakers]) w('');
    const listening = await this.#listening;
    await listening?.unlisten().catch(() => {});
  }
}

/** Milliseconds since the epoch on the database server's clock (the one every lease is measured by). */
function nowMs(sql: Sql<any> | TransactionSql<any>) {
  return sql`(extract(epoch from clock_timestamp()) * 1000)::bigint`;
}

function checkLeaseMs(leaseMs: number): void {
  if (!Number.isSafeInteger(leaseMs) || leaseMs < 1) throw invalid(`lease must be a positive number of milliseconds, got ${leaseMs}`);
}

function isFinished(state: JobState): boolean {
  return state === 'succeeded' || state === 'failed' || state === 'dead';
}
