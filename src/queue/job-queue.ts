/**
 * The build queue. The in-process implementation (local/) runs jobs in this process;
 * the PostgreSQL one (postgres/) lets a farm of workers claim them under leases
 * (lease-worker.ts runs them).
 */
import type { JobRecord, LeaseFence } from '../metadata/metadata-store.js';
import type { ErrorCode } from '../util/errors.js';

export interface EnqueueRequest {
  repo: string;
  ref: string | null;
}

/** Runs a job; `fence` (jobs claimed from a shared queue) is the lease its seq stamp must still hold. */
export type JobRunner = (job: JobRecord, report: (phase: string) => void, fence?: LeaseFence) => Promise<{ commit: string | null }>;

export interface JobQueue {
  /**
   * Queue a sync. A request equal to one already queued (same repo and ref, not
   * yet started) joins it and gets its record back, so bursts coalesce.
   */
  enqueue(req: EnqueueRequest): Promise<JobRecord>;
  /** Resolves when the job has finished (either way), with its final record. */
  wait(id: number): Promise<JobRecord>;
  /** Counts for metrics and status: what waits, what runs, what was given up on. */
  stats(): Promise<QueueStats>;
  /** Stop taking new jobs and wait for running ones. */
  close(): Promise<void>;
}

export interface QueueStats {
  queued: number;
  running: number;
  /** Jobs given up on after their lease expired too often (dead-letter). */
  dead: number;
  /** createdAt of the oldest queued job, ms since epoch; null when none waits. */
  oldestQueuedAt: number | null;
}

/** A claimed job; the token proves the holder, and stops being accepted once the job is reclaimed. */
export interface Lease {
  job: JobRecord;
  token: string;
}

/** A queue whose jobs workers (any number, any process) claim under time-limited leases. */
export interface LeasedQueue extends JobQueue {
  /** Claim the oldest runnable job (queued, or running with an expired lease), or null if none. */
  claim(workerId: string, leaseMs: number): Promise<Lease | null>;
  /** Extend the lease (and record the phase, when given). False: the lease is lost, stop work. */
  heartbeat(lease: Lease, leaseMs: number, phase?: string): Promise<boolean>;
  /** Record success. False: this worker no longer holds the job, nothing was written. */
  complete(lease: Lease, result: { commit: string | null }): Promise<boolean>;
  /** Record failure. False: this worker no longer holds the job, nothing was written. */
  fail(lease: Lease, error: string, code: ErrorCode | null): Promise<boolean>;
  /** Resolve when new work may be there (a wake-up from another process), after `ms` at the latest, or on abort. */
  waitForWork(ms: number, signal?: AbortSignal): Promise<void>;
}
