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
  /** Starts past the checks whose enqueue has not answered yet, by repository. */
  readonly #starting = new Map<string, number>();

  constructor(
    private readonly limits: OnDemandLimits,
    /** Whether a job is still queued or running. */
    private readonly isActive: (jobId: number) => Promise<boolean>,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Start an on-demand build of `repo` with `enqueue`, or throw RateLimited. The checks and
   * the taking of a token are one synchronous step, and a start in flight counts as active,
   * so concurrent requests cannot both pass; a start that joins a job already counted (or fails)
   * gives its token back.
   */
  async start<J extends { id: number }>(repo: string, enqueue: () => Promise<J>): Promise<J> {
    const active = await this.#activeJobs(repo);
    const starting = this.#starting.get(repo) ?? 0;
    if (active.size + starting >= this.limits.maxActive)
      throw new RateLimited(
        `rate-limited: ${active.size + starting} on-demand builds of ${repo} are queued or running; retry when they finish, or build the ref with the admin token (snapclone sync ${repo} --branch <ref>)`,
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
    bucket.tokens -= 1;
    this.#starting.set(repo, starting + 1);
    let job: J;
    try {
      job = await enqueue();
    } catch (err) {
      bucket.tokens += 1;
      throw err;
    } finally {
      const left = (this.#starting.get(repo) ?? 1) - 1;
      if (left > 0) this.#starting.set(repo, left);
      else this.#starting.delete(repo);
    }
    if (active.has(job.id)) bucket.tokens += 1; // joined a job already counted
    else active.add(job.id);
    return job;
  }

  async #activeJobs(repo: string): Promise<Set<number>> {
    let set = this.#active.get(repo);
    if (!set) this.#active.set(repo, (set = new Set()));
    const ids = [...set];
    const live = await Promise.all(ids.map((id) => this.isActive(id)));
    ids.forEach((id, k) => {
      if (!live[k]) set.delete(id);
    });
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
