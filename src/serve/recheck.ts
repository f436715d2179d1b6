/**
 * Re-check after a build: a push that lands while a sync runs (after its
 * fetch) would otherwise wait for the next webhook or poll. So when a sync
 * succeeds, its upstream is asked once more (`git ls-remote`); if the tips
 * differ from the mirror's now, another sync is queued. The chain is bounded:
 * at most MAX_RECHECK_CHAIN syncs queued by re-checks in a row per repository,
 * so an upstream that is pushed to faster than it builds cannot pin the
 * builder; polling picks up after that. The count resets when a re-check finds
 * nothing new, or a sync fails.
 */
import { lsRemote } from '../builder/upstream.js';
import type { JobRecord } from '../metadata/metadata-store.js';
import type { JobRunner } from '../queue/job-queue.js';
import { log } from '../util/log.js';
import { upstreamMoved, type UpstreamChecks } from './poller.js';

export const MAX_RECHECK_CHAIN = 3;

export class RecheckAfterBuild {
  readonly #deps: UpstreamChecks;
  readonly #maxChain: number;
  /** Syncs queued by re-checks in a row, per repository. */
  readonly #chain = new Map<string, number>();
  #stopped = false;

  constructor(deps: UpstreamChecks, maxChain = MAX_RECHECK_CHAIN) {
    this.#deps = deps;
    this.#maxChain = maxChain;
  }

  /** The runner, with a re-check after each successful job (not awaited: the job is done). */
  wrap(runner: JobRunner): JobRunner {
    return async (job, report, fence) => {
      try {
        const result = await runner(job, report, fence);
        this.#afterSuccess(job);
        return result;
      } catch (err) {
        this.#chain.delete(job.repo); // a failing upstream ends the chain; the next trigger starts afresh
        throw err;
      }
    };
  }

  /** Queue nothing more. Checks in flight are not awaited (an ls-remote may hang for minutes): they queue nothing once stopped. */
  async stop(): Promise<void> {
    this.#stopped = true;
  }

  #afterSuccess(job: JobRecord): void {
    if (this.#stopped) return;
    const done = this.#chain.get(job.repo) ?? 0;
    if (done >= this.#maxChain) {
      this.#chain.delete(job.repo);
      log.info(`re-check: ${job.repo} was re-synced ${done} times in a row; not re-checking after job ${job.id} (polling or the next push will catch up)`);
      return;
    }
    void this.#check(job, done); // never throws: it logs
  }

  async #check(job: JobRecord, done: number): Promise<void> {
    try {
      const repo = await this.#deps.meta.getRepo(job.repo);
      if (!repo) return;
      const remote = await lsRemote(repo.url);
      if (this.#stopped) return;
      const now = await this.#deps.meta.getRepo(job.repo);
      if (!now || now.url !== repo.url) return;
      if (!(await upstreamMoved(this.#deps.mirrorDir(job.repo), repo, remote))) {
        this.#chain.delete(job.repo);
        log.debug(`re-check: ${job.repo}: nothing new upstream after job ${job.id}`);
        return;
      }
      if (this.#stopped) return;
      this.#chain.set(job.repo, done + 1);
      const next = await this.#deps.enqueue({ repo: job.repo, ref: null });
      log.info(`re-check: the upstream of ${job.repo} moved during job ${job.id}: sync job ${next.id} (${done + 1} of at most ${this.#maxChain} in a row)`);
    } catch (err) {
      log.warn(`re-check: ${job.repo} after job ${job.id}: ${(err as Error).message}`);
    }
  }
}
