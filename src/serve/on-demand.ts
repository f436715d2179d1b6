/**
 * The bound on on-demand builds: a resolve of a ref nobody built queues a build,
 * and anyone may resolve. Per repository, at most `maxActive` such builds are
 * queued or running at once, and a token bucket lets `perHour` start per hour
 * (full at start, refilled continuously). Coalescing (one job per ref) is the
 * caller's and the queue's; a job handed back twice is counted once. In memory:
 * a restart refills the buckets, which is the price of having no extra table.
 */
import { SnapError } from '../util/errors.js';

export interface OnDemandLimits {
  /** On-demand builds of one repository queued or running at once. */
  maxActive: number;
  /** On-demand builds of one repository started per hour. */
  perHour: number;
}

/** Documented in docs/API.md. */
export const ON_DEMAND_LIMITS: OnDemandLimits = { maxActive: 2, perHour: 10 };

const HOUR_MS = 3_600_000;

/** Thrown when an on-demand build may not start now; carries when to retry. */
export class RateLimited extends SnapError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super('rate-limited', message);
  }
}

interface Bucket {
  tokens: number;
  at: number; // when `tokens` was computed
}

export class OnDemandBuilds {
  readonly #buckets = new Map<string, Bucket>();
  readonly #active = new Map<string, Set<number>>();

  constructor(
    private readonly limits: OnDemandLimits,
    /** Whether a job is still queued or running. */
    private readonly isActive: (jobId: number) => boolean,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Start an on-demand build of `repo` with `enqueue`, or throw RateLimited. Check and
   * enqueue are one synchronous step, so concurrent requests cannot both pass the check.
   */
  start<J extends { id: number }>(repo: string, enqueue: () => J): J {
    const active = this.#activeJobs(repo);
    if (active.size >= this.limits.maxActive)
      throw new RateLimited(
        `rate-limited: ${active.size} on-demand builds of ${repo} are queued or running; retry when they finish, or build the ref with the admin token (snapclone sync ${repo} --branch <ref>)`,
        30,
      );
    const bucket = this.#bucket(repo);
    if (bucket.tokens < 1) {
      const wait = Math.ceil(((1 - bucket.tokens) * HOUR_MS) / this.limits.perHour / 1000);
      throw new RateLimited(
        `rate-limited: ${repo} allows ${this.limits.perHour} on-demand builds per hour; retry in ${Math.ceil(wait / 60)} min, or build the ref with the admin token (snapclone sync ${repo} --branch <ref>)`,
        wait,
      );
    }
    const job = enqueue();
    if (!active.has(job.id)) {
      bucket.tokens -= 1;
      active.add(job.id);
    }
    return job;
  }

  #activeJobs(repo: string): Set<number> {
    let set = this.#active.get(repo);
    if (!set) this.#active.set(repo, (set = new Set()));
    for (const id of set) if (!this.isActive(id)) set.delete(id);
    return set;
  }

  #bucket(repo: string): Bucket {
    const now = this.now();
    const b = this.#buckets.get(repo) ?? { tokens: this.limits.perHour, at: now };
    b.tokens = Math.min(this.limits.perHour, b.tokens + ((now - b.at) * this.limits.perHour) / HOUR_MS);
    b.at = now;
    this.#buckets.set(repo, b);
    return b;
  }

  /** Forget a removed repository. */
  forget(repo: string): void {
    this.#buckets.delete(repo);
    this.#active.delete(repo);
  }
}
