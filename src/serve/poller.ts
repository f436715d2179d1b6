/**
 * Polling: for upstreams that send no webhooks (or whose webhooks got lost),
 * ask each registered upstream for its tips once per interval with one
 * `git ls-remote`, spread evenly over the interval so a server with many
 * repositories never asks them all at once, and queue a sync of those whose
 * tips differ from their mirror's. Errors are logged and the next round tries
 * again; the timers are unref'd and stop() ends the loop without waiting for a
 * check in flight, so polling never keeps a server from stopping.
 */
import { existsSync } from 'node:fs';
import { lsRemote, type RemoteRefs } from '../builder/upstream.js';
import { snapshotRefs } from '../builder/mirror.js';
import { sameTips } from './mirror-refs.js';
import type { RefEntry } from '../clonepack/manifest.js';
import type { MetadataStore, RepoRecord } from '../metadata/metadata-store.js';
import type { EnqueueRequest } from '../queue/job-queue.js';
import type { JobRecord } from '../metadata/metadata-store.js';
import { SnapError } from '../util/errors.js';
import { log } from '../util/log.js';

export const DEFAULT_POLL_SECONDS = 180;

/** The shortest poll interval accepted: below it a round of ls-remotes would run back to back. */
export const MIN_POLL_SECONDS = 1;

/**
 * `--poll-seconds`, else $SNAPCLONE_POLL_SECONDS, else 180; 0 turns polling off. A bad value
 * (not a number of seconds, or between 0 and MIN_POLL_SECONDS) is a usage error.
 */
export function pollSeconds(option: string | number | undefined, env = process.env.SNAPCLONE_POLL_SECONDS): number {
  const given = option ?? (env === undefined || env === '' ? undefined : env);
  if (given === undefined) return DEFAULT_POLL_SECONDS;
  const n = typeof given === 'number' ? given : Number(given);
  if (!Number.isFinite(n) || n < 0 || (typeof given === 'string' && !/^\d+(\.\d+)?$/.test(given.trim())))
    throw new SnapError('usage', `invalid poll interval ${JSON.stringify(String(given))} (seconds, 0 turns polling off)`);
  if (n > 0 && n < MIN_POLL_SECONDS)
    throw new SnapError('usage', `poll interval ${JSON.stringify(String(given))} is below ${MIN_POLL_SECONDS} s (0 turns polling off)`);
  return n;
}

export interface UpstreamChecks {
  meta: Pick<MetadataStore, 'getRepo' | 'listRepos' | 'unfinishedJobs'>;
  mirrorDir(repo: string): string;
  enqueue(req: EnqueueRequest): Promise<JobRecord>;
  /** Refs as the last sync saw them, for a process without the mirror (builds run on workers); null if none. */
  lastSeenRefs?(repo: string): Promise<RefEntry[] | null>;
  /** Builds run in other processes too: compare with lastSeenRefs even where this process has a mirror (it may be stale). */
  sharedBuilds?: boolean;
}

/**
 * Whether the upstream has moved past the mirror: a branch or tag added, deleted or moved, or
 * HEAD naming another branch. A repository never fetched (no mirror) has always moved.
 */
export async function upstreamMoved(mirrorDir: string | null, repo: RepoRecord, remote: RemoteRefs, lastSeen?: () => Promise<RefEntry[] | null>): Promise<boolean> {
  const mirrored = mirrorDir !== null && existsSync(`${mirrorDir}/HEAD`);
  const seen = mirrored ? await snapshotRefs(mirrorDir) : ((await lastSeen?.()) ?? null);
  if (seen === null) return true;
  if (remote.head !== repo.defaultBranch && remote.refs.size > 0) return true;
  return !sameTips(seen, remote.refs);
}

export async function hasUnfinishedJob(meta: Pick<MetadataStore, 'unfinishedJobs'>, repo: string): Promise<boolean> {
  return (await meta.unfinishedJobs()).some((j) => j.repo === repo);
}

export class UpstreamPoller {
  readonly #deps: UpstreamChecks;
  readonly #intervalMs: number;
  #stopped = false;
  #wake: (() => void) | null = null;
  #timer: NodeJS.Timeout | null = null;
  #loop: Promise<void> | null = null;

  constructor(deps: UpstreamChecks, intervalSeconds: number) {
    this.#deps = deps;
    this.#intervalMs = intervalSeconds * 1000;
  }

  start(): void {
    if (this.#intervalMs <= 0 || this.#loop) return;
    this.#loop = this.#run();
  }

  /**
   * End the loop. A check in flight is not awaited (its ls-remote may hang for minutes on a
   * dead upstream): it queues nothing once stopped and ends on its own.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#wake?.();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const start = Date.now();
      try {
        await this.#round(start);
      } catch (err) {
        // A failing round (the database busy or closed) must not end polling, nor reject unawaited.
        log.warn(`poll: ${(err as Error).message}`);
        await this.#sleepUntil(start + this.#intervalMs);
      }
    }
  }

  async #round(start: number): Promise<void> {
    const repos = await this.#deps.meta.listRepos();
    // Repository i of n is asked at (i + 1) / n of the interval: never all at once, and not
    // at start-up (a restarted server's jobs list stays as it was until the first slot).
    const slot = this.#intervalMs / Math.max(1, repos.length);
    for (let i = 0; i < repos.length && !this.#stopped; i++) {
      await this.#sleepUntil(start + (i + 1) * slot);
      if (!this.#stopped) await this.check(repos[i]!.name);
    }
    if (repos.length === 0) await this.#sleepUntil(start + this.#intervalMs);
  }

  /** Poll one repository now: queue a sync if its upstream moved. Never throws. */
  async check(name: string): Promise<JobRecord | null> {
    try {
      const repo = await this.#deps.meta.getRepo(name);
      // A queued sync will fetch anyway, and a running one is re-checked when it ends.
      if (!repo || await hasUnfinishedJob(this.#deps.meta, name)) return null;
      const remote = await lsRemote(repo.url);
      if (this.#stopped) return null;
      const now = await this.#deps.meta.getRepo(name);
      if (!now || now.url !== repo.url) return null; // removed or re-pointed meanwhile
      const lastSeen = this.#deps.lastSeenRefs && (() => this.#deps.lastSeenRefs!(name));
      const mirror = this.#deps.sharedBuilds ? null : this.#deps.mirrorDir(name);
      if (!(await upstreamMoved(mirror, repo, remote, lastSeen))) return null;
      if (this.#stopped || (await hasUnfinishedJob(this.#deps.meta, name))) return null;
      const job = await this.#deps.enqueue({ repo: name, ref: null });
      log.info(`poll: the upstream of ${name} moved: sync job ${job.id}`);
      return job;
    } catch (err) {
      log.warn(`poll: ${name}: ${(err as Error).message}`);
      return null;
    }
  }

  #sleepUntil(at: number): Promise<void> {
    const ms = at - Date.now();
    if (ms <= 0 || this.#stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#wake = () => {
        this.#wake = null;
        this.#timer = null;
        resolve();
      };
      this.#timer = setTimeout(() => this.#wake?.(), ms);
      this.#timer.unref(); // polling alone never keeps the process alive
    });
  }
}
