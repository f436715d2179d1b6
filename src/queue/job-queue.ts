/**
 * The build queue. The in-process implementation runs jobs in this process;
 * a database-backed one will let a farm of workers claim them later.
 */
import type { JobRecord } from '../metadata/metadata-store.js';

export interface EnqueueRequest {
  repo: string;
  ref: string | null;
}

/** What the queue holds right now (for /metrics): jobs by state, and when the oldest queued one was created. */
export interface QueueStats {
  queued: number;
  running: number;
  dead: number;
  /** createdAt (ms since the epoch) of the oldest queued job, null if none is queued. */
  oldestQueuedAt: number | null;
}

export type JobRunner = (job: JobRecord, report: (phase: string) => void) => Promise<{ commit: string | null }>;

export interface JobQueue {
  /**
   * Queue a sync. A request equal to one already queued (same repo and ref, not
   * yet started) joins it and gets its record back, so bursts coalesce.
   */
  enqueue(req: EnqueueRequest): Promise<JobRecord>;
  /** Resolves when the job has finished (either way), with its final record. */
  wait(id: number): Promise<JobRecord>;
  /** Counts of queued, running and dead jobs and the oldest queued job's creation time. */
  stats(): Promise<QueueStats>;
  /** Stop taking new jobs and wait for running ones. */
  close(): Promise<void>;
}
