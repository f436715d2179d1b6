import type { ErrorCode } from '../util/errors.js';

/**
 * Durable records: registered repositories, the mutable ref records that map a
 * (repository, ref) to its latest built manifest, and build jobs.
 * Implemented on SQLite (sqlite/, the embedded default) and PostgreSQL (postgres/).
 */

export interface RepoRecord {
  name: string; // e.g. "expressjs/express"
  url: string; // upstream URL, never with an embedded password
  defaultBranch: string | null; // from the upstream's HEAD, refreshed on every sync
  createdAt: number; // ms since epoch
  /**
   * Who may read it (serve/access/): 'public' needs nothing; 'private' needs the admin token or an
   * upstream credential the server proves against the upstream. Rows from before access control are 'public'.
   */
  visibility: RepoVisibility;
}

export type RepoVisibility = 'public' | 'private';

/** Bytes per clone mode, for status: what each mode downloads. */
export interface ModeSizes {
  editable: number;
  shallow: number;
  files: number;
}

/** Clone modes, as the manifest names them (clonepack/manifest.ts); later ones serve earlier ones. */
export type RefMode = 'shallow' | 'files' | 'full';

/**
 * What serves one (repository, ref, clone mode): the newest commit whose build serves
 * the mode, with the seq of the fetch it came from. `view` is what the manifest shows
 * besides the commit build (JSON the serve layer defines, serve/records.ts); manifests
 * are composed from these records when first asked for (serve/compose.ts).
 */
export interface RefRecord {
  repo: string;
  ref: string; // full ref name: refs/heads/main, refs/tags/v1
  mode: RefMode;
  commit: string | null; // null: the ref does not exist upstream (unborn default branch, empty upstream)
  /**
   * Ordering key, stamped when the build fetched the upstream (per repository,
   * strictly increasing). A record is replaced only by one with a larger seq,
   * so a slow older build can never overwrite a newer one.
   */
  seq: number;
  builtAt: number; // ms since epoch
  view: unknown;
}

/** A repository's refs and history as one sync saw them (JSON of the serve layer); written only when changed. */
export interface SnapshotRecord {
  repo: string;
  seq: number;
  data: unknown;
  createdAt: number;
}

/** 'dead': a dead letter, a job whose lease expired too often (the PostgreSQL queue; SQLite never writes it). */
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'dead';

/** Why a job failed, as an error code (util/errors.ts): not-found, unreachable, build-failed... */
export type JobErrorCode = ErrorCode;

export interface JobRecord {
  id: number;
  repo: string;
  kind: 'sync'; // fetch the upstream and build the named ref (or every built ref)
  ref: string | null; // full ref name, or null for "default branch and every built ref"
  state: JobState;
  phase: string; // human-readable step, e.g. "fetching", "packing history"
  error: string | null;
  /** The failure's error code, so a client can tell "no such branch" from a broken build; null if unknown. */
  errorCode: JobErrorCode | null;
  commit: string | null; // what the job built, once known
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** How many times a worker claimed it (SQLite, run once in process: 1 once started, else 0). */
  attempts: number;
}

/** A job to record; errorCode defaults to null; attempts start at 0 (claims count them). */
export type NewJob = Omit<JobRecord, 'id' | 'errorCode' | 'attempts'> & { errorCode?: JobErrorCode | null };

/** What updateJob may change: attempts are the queue's to count, not a caller's to set. */
export type JobPatch = Partial<Omit<JobRecord, 'id' | 'repo' | 'kind' | 'attempts'>>;

/** A claimed job's lease (queue/job-queue.ts Lease): what a fenced write checks is still held. */
export interface LeaseFence {
  job: number;
  token: string;
}

/** Which record a composed manifest was composed for (garbage collection's retention). */
export interface ComposedOf {
  ref: string;
  mode: RefMode;
  seq: number;
}

/** An artifact garbage collection found unreachable, and since when (ms since epoch). */
export interface GcUnreachable {
  digest: string;
  size: number;
  firstSeen: number;
}

export interface MetadataStore {
  /** Register a repository. Returns false (and changes nothing) if the name exists. */
  addRepo(rec: RepoRecord): Promise<boolean>;
  getRepo(name: string): Promise<RepoRecord | null>;
  listRepos(): Promise<RepoRecord[]>;
  setDefaultBranch(name: string, branch: string | null): Promise<void>;
  /**
   * Point a repository at another URL (throws not-found if unknown). With `newUpstream` (another
   * repository, not another spelling of it), in the same transaction: every ref record is removed
   * (tombstoned at the current seq), and the level chain, snapshots and composed manifests go, so
   * nothing of the old upstream's history reaches the new one's manifests; the default branch is
   * set when given.
   */
  setRepoUrl(name: string, url: string, opts?: { newUpstream?: boolean; defaultBranch?: string | null; visibility?: RepoVisibility }): Promise<void>;
  /**
   * Unregister a repository: its record, its ref records, commit builds, levels, snapshots,
   * composed manifests and finished jobs, in one transaction. Queued and running jobs stay so their end is still recorded; the seq
   * counter stays so a later registration's builds still order after everything before.
   * Returns the removed record, or null if the name was not registered.
   */
  removeRepo(name: string): Promise<RepoRecord | null>;

  /**
   * Next ordering stamp for a repository's builds; strictly increasing, durable. With `fence` (a
   * job claimed from the shared queue) the stamp is taken only while that job's lease is live, in
   * the same statement, else SnapError('conflict'): a worker that lost its job cannot stamp a seq
   * after the worker that took it over (and then publish an older state as newer). Stores
   * without leases (SQLite: one process runs the queue) ignore it.
   */
  nextSeq(repo: string, fence?: LeaseFence): Promise<number>;
  /** The ref's record for one mode (default full), or null. */
  getRef(repo: string, ref: string, mode?: RefMode): Promise<RefRecord | null>;
  /** Every record of a ref, one per mode that has one. */
  getRefModes(repo: string, ref: string): Promise<RefRecord[]>;
  /** Every record of a repository, by ref then mode. */
  listRefs(repo: string): Promise<RefRecord[]>;
  /**
   * Conditional upsert of the (repo, ref, mode) record, one statement: applied only if the
   * repository is registered for `upstream` (the URL the build fetched, so a build of a removed
   * or re-pointed repository never lands) and no record exists or rec.seq > existing seq.
   * Returns whether it was applied.
   */
  publishRef(rec: RefRecord, upstream: string): Promise<boolean>;
  /**
   * Stop serving a ref in every mode (a deleted branch, or one a re-pointed upstream lacks). A
   * build that fetched before the removal (seq up to the repository's current one) cannot
   * publish the ref again; a later fetch can (the ref was created again upstream).
   * With `seq` (a sync that fetched the deletion): only records older than that seq go, and
   * the tombstone is at that seq, so a newer sync that saw the ref re-created keeps it.
   */
  removeRef(repo: string, ref: string, seq?: number): Promise<boolean>;

  /**
   * Record the build of a commit (JSON of build/commit-build.ts). A stage never goes back:
   * 'files' is not replaced by 'shallow'; an equal stage is replaced (a rebuild after damage).
   */
  putCommitBuild(repo: string, commit: string, stage: 'shallow' | 'files', data: unknown): Promise<void>;
  getCommitBuild(repo: string, commit: string): Promise<{ stage: 'shallow' | 'files'; data: unknown } | null>;
  /** The data of the most recently recorded commit builds of a repository, newest first (for reuse). */
  recentCommitBuilds(repo: string, limit: number): Promise<unknown[]>;

  /** The repository's history level chain (JSON) packed from `upstream`, with the seq of the sync that wrote it; null if none. */
  getLevels(repo: string, upstream: string): Promise<{ seq: number; levels: unknown } | null>;
  /**
   * Conditional upsert, one statement: applied only if the repository is registered for
   * `upstream` and the stored chain is of another upstream or has a smaller seq. Returns whether applied.
   */
  setLevels(repo: string, upstream: string, seq: number, levels: unknown): Promise<boolean>;
  /**
   * Insert a snapshot, only if the repository is registered for `upstream` (the URL its sync
   * fetched); a seq is written once (a second put of it changes nothing). Returns whether written.
   */
  putSnapshot(snap: SnapshotRecord, upstream: string): Promise<boolean>;
  getSnapshot(repo: string, seq: number): Promise<SnapshotRecord | null>;
  /** The snapshot with the largest seq, or null. */
  latestSnapshot(repo: string): Promise<SnapshotRecord | null>;

  /** The stored manifest composed for inputs `key`, if any. */
  getComposed(repo: string, key: string): Promise<{ digest: string; size: number } | null>;
  /** `of`: the record it was composed for (retention counts older manifests per repo, ref and mode). */
  putComposed(repo: string, key: string, manifest: { digest: string; size: number }, of?: ComposedOf): Promise<void>;

  createJob(job: NewJob): Promise<JobRecord>;
  updateJob(id: number, patch: JobPatch): Promise<void>;
  getJob(id: number): Promise<JobRecord | null>;
  /** Most recent jobs first. */
  listJobs(repo: string, limit: number): Promise<JobRecord[]>;
  /** Jobs left queued or running by a previous process (after a crash or restart). */
  unfinishedJobs(): Promise<JobRecord[]>;

  // --- Access control (serve/access/): the private-artifact index ---
  /**
   * Record that these digests (a private repository's manifest and every artifact it names) are
   * served only through a signed URL. Idempotent; a digest once marked stays marked (the same
   * bytes in a public repository are then reached through its own signed URLs too).
   */
  markPrivateArtifacts(digests: string[]): Promise<void>;
  /** Whether `digest` was marked by markPrivateArtifacts. */
  isPrivateArtifact(digest: string): Promise<boolean>;
  // --- end access control ---
  // ---- Garbage collection (serve/gc): every method's name starts with gc. ----
  /**
   * The composed manifests retention keeps: per (repo, ref, mode), the `newest` with the largest
   * seq (the current record's and the older ones kept clonable), of refs that still have a
   * record. Rows composed before the columns existed (no ref) are not counted.
   */
  gcRetainedComposed(newest: number): Promise<{ repo: string; digest: string }[]>;
  /** Forget every composed-manifest row naming `digest` (about to be deleted): a resolve never hands it out again. */
  gcDeleteComposed(digest: string): Promise<void>;
  /** Artifacts seen unreachable, with when each was FIRST seen so. */
  gcListUnreachable(): Promise<GcUnreachable[]>;
  /** Record artifacts seen unreachable at `now`; one already recorded keeps its first sighting. */
  gcNoteUnreachable(items: { digest: string; size: number }[], now: number): Promise<void>;
  /** Forget artifacts (reachable again, or deleted). */
  gcForgetUnreachable(digests: string[]): Promise<void>;
  /** Take the one GC pass lease for `ms` (or renew it, same owner). False: another pass holds it. */
  gcAcquirePass(owner: string, ms: number): Promise<boolean>;
  gcReleasePass(owner: string): Promise<void>;
  /**
   * Enter the delete phase: set the "deleting" flag for `ms`, then check that no job runs (a
   * running job whose lease expired more than `zombieMs` ago counts as dead). True: deletes may
   * start, and no job starts until gcEndDelete or the flag expires. False: a job runs, or another
   * owner deletes; the flag is not left set. gcRenew renews it (false: it was lost, stop deleting).
   */
  gcBeginDelete(owner: string, ms: number, zombieMs: number): Promise<boolean>;
  gcRenewDelete(owner: string, ms: number): Promise<boolean>;
  gcEndDelete(owner: string): Promise<void>;
  /**
   * Start a queued job (the in-process queue's claim): state running, unless a GC delete phase is
   * on (then nothing changes and it returns false; the queue tries again later).
   */
  gcStartJob(id: number, phase: string, startedAt: number): Promise<boolean>;
  gcSaveReport(report: unknown): Promise<void>;
  gcLastReport(): Promise<unknown | null>;
  // ---- end of garbage collection ----

  /** Resolves when the database answers (for /readyz); rejects when it does not. */
  ping?(): Promise<void>;

  close(): Promise<void>;
}
