/**
 * MetadataStore on one SQLite file. Several processes may share the file: WAL
 * lets readers run beside the single writer, busy_timeout makes writers queue
 * instead of failing, and every write that must be atomic (publishRef,
 * nextSeq) is a single statement, so there is no read-then-write window.
 */
import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import type { JobRecord, MetadataStore, NewJob, RefRecord, RepoRecord } from './metadata-store.js';
import { SnapError, invalid } from '../util/errors.js';

const BUSY_TIMEOUT_MS = 10_000;

/** MIGRATIONS[i] takes the schema from version i to i + 1; append only, never edit a shipped one. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE repos (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    default_branch TEXT,
    created_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE repo_seq (
    repo TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE refs (
    repo TEXT NOT NULL,
    ref TEXT NOT NULL,
    commit_oid TEXT,
    manifest TEXT NOT NULL,
    manifest_size INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    built_at INTEGER NOT NULL,
    size_editable INTEGER NOT NULL,
    size_shallow INTEGER NOT NULL,
    size_files INTEGER NOT NULL,
    PRIMARY KEY (repo, ref)
  ) STRICT;

  -- AUTOINCREMENT: a job id is never reused, so a stale id cannot name a newer job.
  CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo TEXT NOT NULL,
    kind TEXT NOT NULL,
    ref TEXT,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    phase TEXT NOT NULL,
    error TEXT,
    commit_oid TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
  ) STRICT;
  CREATE INDEX jobs_by_repo ON jobs (repo, id);
  CREATE INDEX jobs_unfinished ON jobs (id) WHERE state IN ('queued', 'running');
  `,
  // 1 -> 2: a failed job keeps its error code (not-found, unreachable, build-failed...).
  `
  ALTER TABLE jobs ADD COLUMN error_code TEXT;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

interface RepoRow {
  name: string;
  url: string;
  default_branch: string | null;
  created_at: number;
}

interface RefRow {
  repo: string;
  ref: string;
  commit_oid: string | null;
  manifest: string;
  manifest_size: number;
  seq: number;
  built_at: number;
  size_editable: number;
  size_shallow: number;
  size_files: number;
}

interface JobRow {
  id: number;
  repo: string;
  kind: string;
  ref: string | null;
  state: string;
  phase: string;
  error: string | null;
  error_code: string | null;
  commit_oid: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

type JobPatch = Partial<Omit<JobRecord, 'id' | 'repo' | 'kind'>>;
const PATCHABLE = ['state', 'phase', 'error', 'errorCode', 'commit', 'createdAt', 'startedAt', 'finishedAt'] as const;

export class SqliteMetadataStore implements MetadataStore {
  readonly #db: Db;
  readonly #stmt: ReturnType<typeof prepareAll>;

  constructor(dbPath: string) {
    this.#db = new Database(dbPath);
    try {
      // busy_timeout first: switching to WAL itself needs a lock another process may hold.
      this.#db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      this.#db.pragma('journal_mode = WAL');
      // FULL: a committed seq or ref must survive power loss, or a seq could be handed out twice.
      this.#db.pragma('synchronous = FULL');
      migrate(this.#db);
      this.#stmt = prepareAll(this.#db);
    } catch (err) {
      this.#db.close();
      throw err;
    }
  }

  addRepo(rec: RepoRecord): boolean {
    return this.#stmt.addRepo.run(rec.name, rec.url, rec.defaultBranch, rec.createdAt).changes === 1;
  }

  getRepo(name: string): RepoRecord | null {
    const row = this.#stmt.getRepo.get(name) as RepoRow | undefined;
    return row ? repoFromRow(row) : null;
  }

  listRepos(): RepoRecord[] {
    return (this.#stmt.listRepos.all() as RepoRow[]).map(repoFromRow);
  }

  setDefaultBranch(name: string, branch: string | null): void {
    if (this.#stmt.setDefaultBranch.run(branch, name).changes === 0) {
      throw new SnapError('not-found', `repository ${name} is not registered`);
    }
  }

  setRepoUrl(name: string, url: string): void {
    if (this.#stmt.setRepoUrl.run(url, name).changes === 0) {
      throw new SnapError('not-found', `repository ${name} is not registered`);
    }
  }

  removeRepo(name: string): RepoRecord | null {
    return this.#db
      .transaction(() => {
        const row = this.#stmt.getRepo.get(name) as RepoRow | undefined;
        if (!row) return null;
        this.#stmt.removeRefs.run(name);
        this.#stmt.removeFinishedJobs.run(name);
        this.#stmt.removeRepo.run(name);
        return repoFromRow(row);
      })
      .immediate();
  }

  nextSeq(repo: string): number {
    return (this.#stmt.nextSeq.get(repo) as { seq: number }).seq;
  }

  getRef(repo: string, ref: string): RefRecord | null {
    const row = this.#stmt.getRef.get(repo, ref) as RefRow | undefined;
    return row ? refFromRow(row) : null;
  }

  listRefs(repo: string): RefRecord[] {
    return (this.#stmt.listRefs.all(repo) as RefRow[]).map(refFromRow);
  }

  publishRef(rec: RefRecord, upstream: string): boolean {
    if (!Number.isSafeInteger(rec.seq)) throw invalid(`ref seq must be an integer, got ${rec.seq}`);
    const info = this.#stmt.publishRef.run({
      upstream,
      repo: rec.repo,
      ref: rec.ref,
      commit: rec.commit,
      manifest: rec.manifest,
      manifestSize: rec.manifestSize,
      seq: rec.seq,
      builtAt: rec.builtAt,
      editable: rec.sizes.editable,
      shallow: rec.sizes.shallow,
      files: rec.sizes.files,
    });
    return info.changes === 1;
  }

  removeRef(repo: string, ref: string): boolean {
    return this.#stmt.removeRef.run(repo, ref).changes === 1;
  }

  createJob(newJob: NewJob): JobRecord {
    const job: Omit<JobRecord, 'id'> = { ...newJob, errorCode: newJob.errorCode ?? null };
    const info = this.#stmt.createJob.run({
      repo: job.repo,
      kind: job.kind,
      ref: job.ref,
      state: job.state,
      phase: job.phase,
      error: job.error,
      errorCode: job.errorCode,
      commit: job.commit,
      createdAt: job.createdAt,
      startedAt: job.startedAt,
      finishedAt: job.finishedAt,
    });
    return { ...job, id: Number(info.lastInsertRowid) };
  }

  updateJob(id: number, patch: JobPatch): void {
    // One prepared statement for every patch shape: has_<field> says whether to set it,
    // which (unlike COALESCE) still lets a patch set a field to null.
    const params: Record<string, unknown> = { id };
    for (const key of PATCHABLE) {
      const present = key in patch && patch[key] !== undefined;
      params[`has_${key}`] = present ? 1 : 0;
      params[key] = present ? patch[key] : null;
    }
    if (this.#stmt.updateJob.run(params).changes === 0) {
      throw new SnapError('not-found', `job ${id} not found`);
    }
  }

  getJob(id: number): JobRecord | null {
    const row = this.#stmt.getJob.get(id) as JobRow | undefined;
    return row ? jobFromRow(row) : null;
  }

  listJobs(repo: string, limit: number): JobRecord[] {
    return (this.#stmt.listJobs.all(repo, limit) as JobRow[]).map(jobFromRow);
  }

  unfinishedJobs(): JobRecord[] {
    return (this.#stmt.unfinishedJobs.all() as JobRow[]).map(jobFromRow);
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}

/** Bring the schema up to date; IMMEDIATE so two processes opening a fresh file do not both migrate. */
function migrate(db: Db): void {
  db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new SnapError(
        'invalid',
        `metadata database has schema version ${version}, newer than this snapclone understands (${MIGRATIONS.length})`,
      );
    }
    for (let v = version; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!);
    if (version !== MIGRATIONS.length) db.pragma(`user_version = ${MIGRATIONS.length}`);
  }).immediate();
}

function prepareAll(db: Db) {
  const s = (sql: string): Statement => db.prepare(sql);
  return {
    addRepo: s(`INSERT INTO repos (name, url, default_branch, created_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (name) DO NOTHING`),
    getRepo: s(`SELECT * FROM repos WHERE name = ?`),
    listRepos: s(`SELECT * FROM repos ORDER BY name`),
    setDefaultBranch: s(`UPDATE repos SET default_branch = ? WHERE name = ?`),
    setRepoUrl: s(`UPDATE repos SET url = ? WHERE name = ?`),
    removeRepo: s(`DELETE FROM repos WHERE name = ?`),
    removeRefs: s(`DELETE FROM refs WHERE repo = ?`),
    removeRef: s(`DELETE FROM refs WHERE repo = ? AND ref = ?`),
    removeFinishedJobs: s(`DELETE FROM jobs WHERE repo = ? AND state IN ('succeeded', 'failed')`),
    // One statement, so the increment is atomic across connections and processes.
    nextSeq: s(`INSERT INTO repo_seq (repo, seq) VALUES (?, 1)
                ON CONFLICT (repo) DO UPDATE SET seq = seq + 1
                RETURNING seq`),
    getRef: s(`SELECT * FROM refs WHERE repo = ? AND ref = ?`),
    listRefs: s(`SELECT * FROM refs WHERE repo = ? ORDER BY ref`),
    // The registration check and the seq comparison live in the statement, so no concurrent
    // writer (a removal, a re-point, a newer build) can slip in between.
    publishRef: s(`INSERT INTO refs (repo, ref, commit_oid, manifest, manifest_size, seq, built_at,
                                     size_editable, size_shallow, size_files)
                   SELECT :repo, :ref, :commit, :manifest, :manifestSize, :seq, :builtAt,
                          :editable, :shallow, :files
                   WHERE EXISTS (SELECT 1 FROM repos WHERE name = :repo AND url = :upstream)
                   ON CONFLICT (repo, ref) DO UPDATE SET
                     commit_oid = excluded.commit_oid,
                     manifest = excluded.manifest,
                     manifest_size = excluded.manifest_size,
                     seq = excluded.seq,
                     built_at = excluded.built_at,
                     size_editable = excluded.size_editable,
                     size_shallow = excluded.size_shallow,
                     size_files = excluded.size_files
                   WHERE excluded.seq > refs.seq`),
    createJob: s(`INSERT INTO jobs (repo, kind, ref, state, phase, error, error_code, commit_oid, created_at, started_at, finished_at)
                  VALUES (:repo, :kind, :ref, :state, :phase, :error, :errorCode, :commit, :createdAt, :startedAt, :finishedAt)`),
    updateJob: s(`UPDATE jobs SET
                    state = CASE WHEN :has_state THEN :state ELSE state END,
                    phase = CASE WHEN :has_phase THEN :phase ELSE phase END,
                    error = CASE WHEN :has_error THEN :error ELSE error END,
                    error_code = CASE WHEN :has_errorCode THEN :errorCode ELSE error_code END,
                    commit_oid = CASE WHEN :has_commit THEN :commit ELSE commit_oid END,
                    created_at = CASE WHEN :has_createdAt THEN :createdAt ELSE created_at END,
                    started_at = CASE WHEN :has_startedAt THEN :startedAt ELSE started_at END,
                    finished_at = CASE WHEN :has_finishedAt THEN :finishedAt ELSE finished_at END
                  WHERE id = :id`),
    getJob: s(`SELECT * FROM jobs WHERE id = ?`),
    listJobs: s(`SELECT * FROM jobs WHERE repo = ? ORDER BY id DESC LIMIT ?`),
    unfinishedJobs: s(`SELECT * FROM jobs WHERE state IN ('queued', 'running') ORDER BY id`),
  };
}

function repoFromRow(r: RepoRow): RepoRecord {
  return { name: r.name, url: r.url, defaultBranch: r.default_branch, createdAt: r.created_at };
}

function refFromRow(r: RefRow): RefRecord {
  return {
    repo: r.repo,
    ref: r.ref,
    commit: r.commit_oid,
    manifest: r.manifest,
    manifestSize: r.manifest_size,
    seq: r.seq,
    builtAt: r.built_at,
    sizes: { editable: r.size_editable, shallow: r.size_shallow, files: r.size_files },
  };
}

function jobFromRow(r: JobRow): JobRecord {
  return {
    id: r.id,
    repo: r.repo,
    kind: r.kind as JobRecord['kind'],
    ref: r.ref,
    state: r.state as JobRecord['state'],
    phase: r.phase,
    error: r.error,
    errorCode: r.error_code as JobRecord['errorCode'],
    commit: r.commit_oid,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}
