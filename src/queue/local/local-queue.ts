/**
 * In-process JobQueue. Jobs are recorded in the MetadataStore (so status pages
 * and `wait` see them) but scheduled from memory: FIFO, at most `concurrency`
 * at once, and one at a time per repository, since two builds of the same repo
 * would fight over its mirror.
 */
import type { JobPatch, JobRecord, MetadataStore } from '../../metadata/metadata-store.js';
import type { EnqueueRequest, JobQueue, JobRunner, QueueStats } from '../job-queue.js';
import { jobErrorMessage } from '../job-error.js';
import { SnapError, invalid } from '../../util/errors.js';

export interface LocalJobQueueOptions {
  /** Jobs run at once, across repositories (default 1). */
  concurrency?: number;
}

interface Waiter {
  resolve: (job: JobRecord) => void;
}

/** How often a running job's phase is written to the store, at most. */
const PHASE_WRITE_MS = 300;

/** A job not started because a GC delete phase is on. */
const DEFERRED = Symbol('deferred');
/** How soon a job held back by a GC delete phase is tried again. */
const GC_RETRY_MS = 100;

export const INTERRUPTED = 'interrupted by server restart';
export const CANCELLED = 'cancelled: server shutting down';

export class LocalJobQueue implements JobQueue {
  readonly #store: MetadataStore;
  readonly #runner: JobRunner;
  readonly #concurrency: number;
  /** Queued jobs in arrival order. */
  #pending: JobRecord[] = [];
  /** Running jobs by id; the promise settles once the job's final state is recorded. */
  readonly #running = new Map<number, Promise<void>>();
  readonly #busyRepos = new Set<string>();
  readonly #waiters = new Map<number, Waiter[]>();
  /** Enqueues whose job row is being inserted, by repo and ref. */
  readonly #creating = new Map<string, Promise<JobRecord>>();
  #closed = false;
  #pumpScheduled = false;

  constructor(store: MetadataStore, runner: JobRunner, options: LocalJobQueueOptions = {}) {
    const concurrency = options.concurrency ?? 1;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
      throw invalid(`queue concurrency must be a positive integer, got ${concurrency}`);
    }
    this.#store = store;
    this.#runner = runner;
    this.#concurrency = concurrency;
  }

  /**
   * Mark failed the jobs a dead server left queued or running, and return them.
   * Construction changes nothing: the owner calls this only once it is sure it is
   * the data dir's one server (lock held, port bound), since those same records
   * are live jobs of a running server to anyone else. Jobs are reported, not
   * rerun: the next push or sync queues a fresh one, and a silent rerun could
   * repeat whatever crashed us. Jobs this queue itself runs are left alone.
   */
  async recover(): Promise<JobRecord[]> {
    const now = Date.now();
    const mine = (id: number) => this.#running.has(id) || this.#pending.some((j) => j.id === id);
    const dead = (await this.#store.unfinishedJobs()).filter((j) => !mine(j.id));
    for (const job of dead) await this.#store.updateJob(job.id, { state: 'failed', error: INTERRUPTED, finishedAt: now });
    return dead;
  }

  enqueue(req: EnqueueRequest): Promise<JobRecord> {
    if (this.#closed) return Promise.reject(new SnapError('internal', 'job queue is closed'));
    // Coalesce with a queued twin, or with one still being recorded (the insert is async, so
    // a burst of enqueues in one tick must find the first one's promise, not race it).
    const key = `${req.repo}\0${req.ref ?? ''}`;
    const creating = this.#creating.get(key);
    if (creating) return creating;
    const twin = this.#pending.find((j) => j.repo === req.repo && j.ref === req.ref);
    if (twin) return this.#store.getJob(twin.id).then((j) => j ?? twin);
    const created = this.#create(req).finally(() => this.#creating.delete(key));
    this.#creating.set(key, created);
    return created;
  }

  async #create(req: EnqueueRequest): Promise<JobRecord> {
    const job = await this.#store.createJob({
      repo: req.repo,
      kind: 'sync',
      ref: req.ref,
      state: 'queued',
      phase: 'queued',
      error: null,
      commit: null,
      createdAt: Date.now(),
      startedAt: null,
      finishedAt: null,
    });
    if (this.#closed) {
      await this.#finish(job, { state: 'failed', error: CANCELLED, finishedAt: Date.now() });
      throw new SnapError('internal', 'job queue is closed');
    }
    this.#pending.push(job);
    this.#schedulePump();
    return job;
  }

  wait(id: number): Promise<JobRecord> {
    if (this.#running.has(id) || this.#pending.some((j) => j.id === id)) {
      return new Promise((resolve) => {
        const list = this.#waiters.get(id) ?? [];
        list.push({ resolve });
        this.#waiters.set(id, list);
      });
    }
    return this.#store.getJob(id).then((job) => {
      if (!job) throw new SnapError('not-found', `job ${id} not found`);
      if (job.state === 'queued' || job.state === 'running') {
        throw new SnapError('conflict', `job ${id} is ${job.state} but is not run by this process`);
      }
      return job;
    });
  }

  /** From memory: this process is the only one running these jobs, and it never gives one up (dead is always 0). */
  async stats(): Promise<QueueStats> {
    const oldest = this.#pending.reduce<number | null>((min, j) => (min === null || j.createdAt < min ? j.createdAt : min), null);
    return { queued: this.#pending.length, running: this.#running.size, dead: 0, oldestQueuedAt: oldest };
  }

  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      // Queued jobs will not start now; record that so their waiters and status pages are not left hanging.
      const pending = this.#pending;
      this.#pending = [];
      await Promise.all(pending.map((job) => this.#finish(job, { state: 'failed', error: CANCELLED, finishedAt: Date.now() })));
    }
    await Promise.all([...this.#creating.values()].map((p) => p.catch(() => {})));
    await Promise.all(this.#running.values());
  }

  /** Start jobs on a later turn of the event loop, so a burst of enqueues (each awaited) can coalesce first. */
  #schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#closed) return;
    for (let i = 0; i < this.#pending.length && this.#running.size < this.#concurrency; ) {
      const job = this.#pending[i]!;
      // The earliest queued job of a repo blocks its later ones, which keeps each repo in order.
      if (this.#busyRepos.has(job.repo)) {
        i++;
        continue;
      }
      this.#pending.splice(i, 1);
      this.#busyRepos.add(job.repo);
      // Bookkeeping runs in a .then, so always after this loop, never re-entering it.
      // The job counts as running until its end is recorded, so wait() never finds it in between.
      const settled = this.#run(job).then(async (final) => {
        if (final === DEFERRED) {
          // A GC delete phase is on: the job stays first in line and is tried again shortly.
          this.#busyRepos.delete(job.repo);
          this.#running.delete(job.id);
          if (this.#closed) return this.#finish(job, { state: 'failed', error: CANCELLED, finishedAt: Date.now() });
          this.#pending.unshift(job);
          setTimeout(() => this.#pump(), GC_RETRY_MS);
          return;
        }
        const record = await this.#record(job, final);
        this.#busyRepos.delete(job.repo);
        this.#running.delete(job.id);
        this.#deliver(job.id, record); // after the bookkeeping: a waiter may call wait() again at once
        this.#pump();
      });
      this.#running.set(job.id, settled);
    }
  }

  /** Run one job; never rejects, resolves with the final state to record. */
  async #run(queued: JobRecord): Promise<JobPatch | typeof DEFERRED> {
    let done = false;
    let phase = 'starting';
    let timer: NodeJS.Timeout | null = null;
    try {
      const job: JobRecord = { ...queued, state: 'running', phase, startedAt: Date.now() };
      // The start is the GC handshake's claim: refused while a GC delete phase is on (serve/gc).
      if (!(await this.#store.gcStartJob(job.id, phase, job.startedAt!))) return DEFERRED;
      // Phases are written at most every PHASE_WRITE_MS (the final state carries the last one):
      // a sync with nothing new then writes only its job's start and end.
      let lastWrite = Date.now();
      const write = (): void => {
        timer = null;
        if (done) return; // a runner that reports after settling must not rewrite history
        lastWrite = Date.now();
        // Progress is cosmetic; a failed update must not fail the build.
        this.#store.updateJob(job.id, { phase }).catch(() => {});
      };
      const report = (p: string): void => {
        if (done) return;
        phase = p;
        if (!timer) timer = setTimeout(write, Math.max(0, lastWrite + PHASE_WRITE_MS - Date.now())).unref();
      };
      const result = await this.#runner(job, report);
      return { state: 'succeeded', phase: 'done', commit: result?.commit ?? null, finishedAt: Date.now() };
    } catch (err) {
      // Keep the last phase: "failed while packing history" says where.
      return { state: 'failed', phase, error: jobErrorMessage(err), errorCode: err instanceof SnapError ? err.code : 'build-failed', finishedAt: Date.now() };
    } finally {
      done = true;
      if (timer) clearTimeout(timer);
    }
  }

  /** Record a job's final state and hand the record to its waiters, even if the store fails. */
  async #finish(job: JobRecord, patch: JobPatch): Promise<void> {
    this.#deliver(job.id, await this.#record(job, patch));
  }

  /** Write a job's final state; the record to hand its waiters, even if the store fails. */
  async #record(job: JobRecord, patch: JobPatch): Promise<JobRecord> {
    try {
      await this.#store.updateJob(job.id, patch);
      return (await this.#store.getJob(job.id)) ?? { ...job, ...patch };
    } catch {
      return { ...job, ...patch };
    }
  }

  #deliver(id: number, record: JobRecord): void {
    const waiters = this.#waiters.get(id) ?? [];
    this.#waiters.delete(id);
    for (const w of waiters) w.resolve(record);
  }
}
