/**
 * Runs jobs from a LeasedQueue: claim, run, heartbeat, acknowledge. The lease is the
 * worker's only right to the job: heartbeats extend it (carrying the latest phase), and
 * once one is refused (another worker reclaimed the job) the runner's next `report`
 * throws, so the build stops at its next step instead of racing the new holder. Final
 * writes name the lease token, so a late complete() of a lost job changes nothing.
 */
import type { JobRecord } from '../metadata/metadata-store.js';
import type { JobRunner, Lease, LeasedQueue } from './job-queue.js';
import { jobErrorMessage } from './job-error.js';
import { SnapError, invalid } from '../util/errors.js';
import { log } from '../util/log.js';

export interface LeaseWorkerOptions {
  queue: LeasedQueue;
  runner: JobRunner;
  /** Names this worker in the jobs it holds (lease_owner); slots add "/<n>" when concurrency > 1. */
  workerId: string;
  /** Jobs run at once by this worker (default 1). */
  concurrency?: number;
  /** How long a claim or heartbeat keeps the job this worker's (default 30 s). */
  leaseMs?: number;
  /** Time between heartbeats (default leaseMs / 3: two may fail before the lease runs out). */
  heartbeatMs?: number;
  /** Longest idle wait between claim attempts when no notification comes (default 1 s): expired leases notify nobody. */
  pollMs?: number;
  /** Called with each job's end, whatever it was (metrics, tests). */
  onJobEnd?: (end: JobEnd) => void;
}

export interface JobEnd {
  job: JobRecord;
  outcome: 'succeeded' | 'failed' | 'lease-lost';
  /** Whether the final state was recorded (false: the lease was lost, the write refused). */
  recorded: boolean;
  seconds: number;
}

export interface LeaseWorkers {
  /** Claim nothing more; resolves once the jobs being run have ended and been recorded. */
  stop(): Promise<void>;
}

/** Soonest a reported phase is written after the previous heartbeat: phases are cosmetic, writes are not free. */
const PHASE_WRITE_MS = 300;
/** Wait after a failed claim (database down) before the next, so a worker does not spin. */
const CLAIM_RETRY_MS = 1000;

export function runLeaseWorkers(opts: LeaseWorkerOptions): LeaseWorkers {
  const concurrency = opts.concurrency ?? 1;
  const leaseMs = opts.leaseMs ?? 30_000;
  const heartbeatMs = opts.heartbeatMs ?? Math.floor(leaseMs / 3);
  const pollMs = opts.pollMs ?? 1000;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw invalid(`worker concurrency must be a positive integer, got ${concurrency}`);
  if (!Number.isSafeInteger(leaseMs) || leaseMs < 1) throw invalid(`lease must be a positive number of milliseconds, got ${leaseMs}`);
  if (!Number.isSafeInteger(heartbeatMs) || heartbeatMs < 1 || heartbeatMs >= leaseMs) {
    throw invalid(`heartbeat interval must be a positive number of milliseconds below the lease (${leaseMs}), got ${heartbeatMs}`);
  }
  const stopping = new AbortController();
  const slot = async (id: string): Promise<void> => {
    while (!stopping.signal.aborted) {
      let lease: Lease | null;
      const claimedAt = Date.now(); // before the claim: its lease runs at least leaseMs from here
      try {
        lease = await opts.queue.claim(id, leaseMs);
      } catch (err) {
        log.warn(`worker ${id}: claiming a job failed: ${jobErrorMessage(err)}`);
        await idle(CLAIM_RETRY_MS, stopping.signal);
        continue;
      }
      // A claim that answered after stop() is still ours to run: it is leased to us.
      if (lease) await runLeased(lease, claimedAt, { ...opts, workerId: id, leaseMs, heartbeatMs });
      else await opts.queue.waitForWork(pollMs, stopping.signal).catch(() => idle(pollMs, stopping.signal));
    }
  };
  const ids = Array.from({ length: concurrency }, (_, i) => (concurrency === 1 ? opts.workerId : `${opts.workerId}/${i + 1}`));
  const slots = Promise.all(ids.map(slot));
  return {
    stop: async () => {
      stopping.abort();
      await slots;
    },
  };
}

/** Run one leased job to its end and record that; never rejects. */
async function runLeased(
  lease: Lease,
  claimedAt: number,
  opts: LeaseWorkerOptions & { leaseMs: number; heartbeatMs: number },
): Promise<void> {
  const { queue, leaseMs, heartbeatMs } = opts;
  const job = lease.job;
  const started = Date.now();
  let lost = false;
  let ended = false;
  /** A phase reported but not yet written. */
  let unsent: string | undefined;
  let lastPhase = job.phase;
  /** Local time before the last heartbeat the database confirmed: the lease lasts at least leaseMs from then. */
  let confirmedAt = claimedAt;
  let timer: NodeJS.Timeout | null = null;
  let dueAt = 0;
  /** The heartbeat being sent; at most one at a time, the next is scheduled only once it has answered. */
  let inFlight: Promise<void> | null = null;

  const schedule = (delay: number): void => {
    if (ended || lost || inFlight) return;
    if (timer) clearTimeout(timer);
    dueAt = Date.now() + delay;
    timer = setTimeout(() => void beat(), delay);
  };
  const beat = (): Promise<void> => {
    timer = null;
    const phase = unsent;
    unsent = undefined;
    const sentAt = Date.now();
    inFlight = (async () => {
      try {
        if (await queue.heartbeat(lease, leaseMs, phase)) confirmedAt = sentAt;
        else lost = true;
      } catch (err) {
        // The database did not answer: the lease may still be ours, until it would have run out.
        if (unsent === undefined) unsent = phase;
        if (Date.now() - confirmedAt >= leaseMs) lost = true;
        log.warn(`worker ${opts.workerId}: heartbeat for job ${job.id} failed: ${jobErrorMessage(err)}`);
      }
    })();
    return inFlight.then(() => {
      inFlight = null;
      if (lost) log.warn(`worker ${opts.workerId}: lost the lease on job ${job.id} (${job.repo}); stopping it`);
      schedule(unsent !== undefined ? PHASE_WRITE_MS : heartbeatMs);
    });
  };
  const report = (phase: string): void => {
    if (lost || (!ended && Date.now() - confirmedAt >= leaseMs)) {
      lost = true;
      throw new SnapError('conflict', `lease lost on job ${job.id} (${job.repo}): another worker may have taken it over`);
    }
    if (ended) return;
    unsent = phase;
    lastPhase = phase;
    // Written with the next heartbeat; brought forward so a phase shows within PHASE_WRITE_MS.
    const soonest = Math.max(PHASE_WRITE_MS - (Date.now() - confirmedAt), 0);
    if (!inFlight && (!timer || dueAt > Date.now() + soonest)) schedule(soonest);
  };

  schedule(heartbeatMs);
  let outcome: JobEnd['outcome'];
  let recorded = false;
  try {
    let result: { commit: string | null } | null = null;
    let failure: unknown = null;
    try {
      result = await opts.runner(job, report, { job: job.id, token: lease.token });
    } catch (err) {
      failure = err;
    }
    ended = true;
    if (timer) clearTimeout(timer);
    await inFlight;
    try {
      if (failure === null) {
        recorded = await queue.complete(lease, { commit: result?.commit ?? null });
        outcome = recorded ? 'succeeded' : 'lease-lost';
      } else if (lost || (failure instanceof SnapError && failure.code === 'conflict' && /lost its lease/.test(failure.message))) {
        // Stopped because the lease is (or may be) gone: not a failure of the job. Another worker
        // has it, or it is reclaimed once the lease runs out and runs again (attempts + 1).
        outcome = 'lease-lost';
      } else {
        // The last reported phase says where it failed; it goes with one more heartbeat if not yet written.
        if (unsent !== undefined && !lost) await queue.heartbeat(lease, leaseMs, lastPhase).catch(() => false);
        recorded = await queue.fail(lease, jobErrorMessage(failure), failure instanceof SnapError ? failure.code : 'build-failed');
        outcome = recorded ? 'failed' : 'lease-lost';
      }
    } catch (err) {
      // The database is away: the lease runs out and another worker runs the job again.
      outcome = failure === null ? 'succeeded' : 'failed';
      log.error(`worker ${opts.workerId}: recording the end of job ${job.id} failed: ${jobErrorMessage(err)}`);
    }
    if (!recorded && outcome === 'lease-lost') {
      // Never retried: the job is another worker's now, and its outcome is that worker's to record.
      log.warn(`worker ${opts.workerId}: job ${job.id} (${job.repo}) ended after its lease was lost; its result was not recorded`);
    }
  } finally {
    ended = true;
    if (timer) clearTimeout(timer);
  }
  try {
    opts.onJobEnd?.({ job, outcome, recorded, seconds: (Date.now() - started) / 1000 });
  } catch (err) {
    log.warn(`worker ${opts.workerId}: job end hook failed: ${jobErrorMessage(err)}`);
  }
}

function idle(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
