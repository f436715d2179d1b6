/**
 * The build queue. The in-process implementation runs jobs in this process;
 * a database-backed one will let a farm of workers claim them later.
 */
import type { JobRecord } from '../metadata/metadata-store.js';

export interface EnqueueRequest {
  repo: string;
  ref: string | null;
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
  /** Stop taking new jobs and wait for running ones. */
  close(): Promise<void>;
}
