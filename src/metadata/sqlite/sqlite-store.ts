/**
 * MetadataStore on one SQLite file. Several processes may share the file: WAL
 * lets readers run beside the single writer, busy_timeout makes writers queue
 * instead of failing, and every write that must be atomic (publishRef,
 * nextSeq, putCommitBuild) is a single statement, so there is no read-then-write window.
 */
import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import type { ComposedOf, GcUnreachable, JobPatch, JobRecord, MetadataStore, NewJob, RefMode, RefRecord, RepoRecord, RepoVisibility, SnapshotRecord } from '../metadata-store.js';
import { SnapError, invalid } from '../../util/errors.js';
import { jobFromRow, refFromRow, repoFromRow, snapshotFromRow, type JobRow, type RefRow, type RepoRow, type SnapshotRow } from '../rows.js';

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
  // 2 -> 3 (incremental builds, two-phase publish): records per (repo, ref, mode); commit builds
  // shared by every ref at a commit; the history level chain; refs snapshots; composed manifests.
  // A version 1 build's ref record becomes a full-mode record that serves its manifest as it is.
  `
  CREATE TABLE ref_modes (
    repo TEXT NOT NULL,
    ref TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('shallow', 'files', 'full')),
    commit_oid TEXT,
    seq INTEGER NOT NULL,
    built_at INTEGER NOT NULL,
    view TEXT NOT NULL,
    PRIMARY KEY (repo, ref, mode)
  ) STRICT;
  INSERT INTO ref_modes (repo, ref, mode, commit_oid, seq, built_at, view)
    SELECT repo, ref, 'full', commit_oid, seq, built_at,
           json_object('defaultBranch', NULL, 'refs', json('[]'), 'followedTags', json('[]'), 'tagPack', NULL,
                       'tagsKey', '', 'snapshot', NULL,
                       'legacy', json_object('manifest', manifest, 'manifestSize', manifest_size,
                                             'sizes', json_object('editable', size_editable, 'shallow', size_shallow, 'files', size_files)))
    FROM refs;
  DROP TABLE refs;

  CREATE TABLE commit_builds (
    repo TEXT NOT NULL,
    commit_oid TEXT NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('shallow', 'files')),
    data TEXT NOT NULL,
    recorded INTEGER NOT NULL,
    PRIMARY KEY (repo, commit_oid)
  ) STRICT;
  CREATE INDEX commit_builds_recent ON commit_builds (repo, recorded);

  CREATE TABLE repo_levels (
    repo TEXT PRIMARY KEY,
    levels TEXT NOT NULL
  ) STRICT;

  CREATE TABLE refs_snapshots (
    repo TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (repo, seq)
  ) STRICT;

  -- A removed ref: a build that fetched before the removal (seq <= this one) cannot bring it back.
  CREATE TABLE ref_tombstones (
    repo TEXT NOT NULL,
    ref TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (repo, ref)
  ) STRICT;

  CREATE TABLE composed_manifests (
    repo TEXT NOT NULL,
    inputs TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (repo, inputs)
  ) STRICT;
  `,
  // 3 -> 4: the level chain names the upstream it was packed from and the seq of the sync that
  // wrote it, so a re-pointed repository starts a new chain and an older sync never replaces a
  // newer one's chain.
  `
  ALTER TABLE repo_levels ADD COLUMN upstream TEXT NOT NULL DEFAULT '';
  ALTER TABLE repo_levels ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
  UPDATE repo_levels SET upstream = COALESCE((SELECT url FROM repos WHERE repos.name = repo_levels.repo), '');
  `,
  // access: who may read a repository (existing ones stay public, as they were served), and the
  // digests of private repositories' manifests and artifacts, served only through signed URLs.
  `
  ALTER TABLE repos ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'private'));
  CREATE TABLE private_artifacts (
    digest TEXT PRIMARY KEY
  ) STRICT;
  `,
  // gc: which record each composed manifest is of (retention), artifacts seen unreachable since
  // when, and the one-row GC state (the pass lease, the "deleting" flag job starts check, the last report).
  `
  ALTER TABLE composed_manifests ADD COLUMN ref TEXT;
  ALTER TABLE composed_manifests ADD COLUMN mode TEXT;
  ALTER TABLE composed_manifests ADD COLUMN seq INTEGER;
  ALTER TABLE composed_manifests ADD COLUMN created_at INTEGER;
  CREATE INDEX composed_by_digest ON composed_manifests (digest);
  CREATE TABLE gc_unreachable (
    digest TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    first_seen INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE gc_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pass_owner TEXT,
    pass_until INTEGER,
    deleting_owner TEXT,
    deleting_until INTEGER,
    last_report TEXT
  ) STRICT;
  INSERT INTO gc_state (id) VALUES (1);
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;




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

  async addRepo(rec: RepoRecord): Promise<boolean> {
    return this.#stmt.addRepo.run(rec.name, rec.url, rec.defaultBranch, rec.createdAt, rec.visibility).changes === 1;
  }

  async getRepo(name: string): Promise<RepoRecord | null> {
    const row = this.#stmt.getRepo.get(name) as RepoRow | undefined;
    return row ? repoFromRow(row) : null;
  }

  async listRepos(): Promise<RepoRecord[]> {
    return (this.#stmt.listRepos.all() as RepoRow[]).map(repoFromRow);
  }

  async setDefaultBranch(name: string, branch: string | null): Promise<void> {
    if (this.#stmt.setDefaultBranch.run(branch, name).changes === 0) {
      throw new SnapError('not-found', `repository ${name} is not registered`);
    }
  }

  async setRepoUrl(name: string, url: string, opts: { newUpstream?: boolean; defaultBranch?: string | null; visibility?: RepoVisibility } = {}): Promise<void> {
    this.#db
      .transaction(() => {
        if (this.#stmt.setRepoUrl.run(url, name).changes === 0) throw new SnapError('not-found', `repository ${name} is not registered`);
        if (opts.visibility) this.#stmt.setVisibility.run(opts.visibility, name);
        if (!opts.newUpstream) return;
        // Another upstream: every ref record goes (tombstoned at the current seq, so a build of
        // the old upstream still running cannot bring one back), and so do the level chain,
        // the snapshots and the composed manifests: none of the old upstream's history may end
        // up in the new one's manifests.
        const refs = this.#stmt.listRefNames.all(name) as { ref: string }[];
        for (const { ref } of refs) this.#stmt.tombstone.run({ repo: name, ref });
        for (const st of this.#stmt.resetHistory) st.run(name);
        if (opts.defaultBranch !== undefined) this.#stmt.setDefaultBranch.run(opts.defaultBranch, name);
      })
      .immediate();
  }

  async removeRepo(name: string): Promise<RepoRecord | null> {
    return this.#db
      .transaction(() => {
        const row = this.#stmt.getRepo.get(name) as RepoRow | undefined;
        if (!row) return null;
        for (const st of this.#stmt.removeRepoData) st.run(name);
        this.#stmt.removeFinishedJobs.run(name);
        this.#stmt.removeRepo.run(name);
        return repoFromRow(row);
      })
      .immediate();
  }

  async nextSeq(repo: string): Promise<number> {
    return (this.#stmt.nextSeq.get(repo) as { seq: number }).seq;
  }

  async getRef(repo: string, ref: string, mode: RefMode = 'full'): Promise<RefRecord | null> {
    const row = this.#stmt.getRef.get(repo, ref, mode) as RefRow | undefined;
    return row ? refFromRow(row) : null;
  }

  async getRefModes(repo: string, ref: string): Promise<RefRecord[]> {
    return (this.#stmt.getRefModes.all(repo, ref) as RefRow[]).map(refFromRow);
  }

  async listRefs(repo: string): Promise<RefRecord[]> {
    return (this.#stmt.listRefs.all(repo) as RefRow[]).map(refFromRow);
  }

  async publishRef(rec: RefRecord, upstream: string): Promise<boolean> {
    if (!Number.isSafeInteger(rec.seq)) throw invalid(`ref seq must be an integer, got ${rec.seq}`);
    const info = this.#stmt.publishRef.run({
      upstream,
      repo: rec.repo,
      ref: rec.ref,
      mode: rec.mode,
      commit: rec.commit,
      seq: rec.seq,
      builtAt: rec.builtAt,
      view: JSON.stringify(rec.view),
    });
    return info.changes === 1;
  }

  async removeRef(repo: string, ref: string, seq?: number): Promise<boolean> {
    return this.#db
      .transaction(() => {
        if (seq === undefined) {
          this.#stmt.tombstone.run({ repo, ref });
          return this.#stmt.removeRef.run(repo, ref).changes > 0;
        }
        this.#stmt.tombstoneAt.run({ repo, ref, seq });
        return this.#stmt.removeRefBefore.run(repo, ref, seq).changes > 0;
      })
      .immediate();
  }

  async putCommitBuild(repo: string, commit: string, stage: 'shallow' | 'files', data: unknown): Promise<void> {
    this.#stmt.putCommitBuild.run({ repo, commit, stage, data: JSON.stringify(data), recorded: Date.now() });
  }

  async getCommitBuild(repo: string, commit: string): Promise<{ stage: 'shallow' | 'files'; data: unknown } | null> {
    const row = this.#stmt.getCommitBuild.get(repo, commit) as { stage: 'shallow' | 'files'; data: string } | undefined;
    return row ? { stage: row.stage, data: JSON.parse(row.data) } : null;
  }

  async recentCommitBuilds(repo: string, limit: number): Promise<unknown[]> {
    return (this.#stmt.recentCommitBuilds.all(repo, limit) as { data: string }[]).map((r) => JSON.parse(r.data));
  }

  async getLevels(repo: string, upstream: string): Promise<{ seq: number; levels: unknown } | null> {
    const row = this.#stmt.getLevels.get(repo, upstream) as { levels: string; seq: number } | undefined;
    return row ? { seq: row.seq, levels: JSON.parse(row.levels) } : null;
  }

  async setLevels(repo: string, upstream: string, seq: number, levels: unknown): Promise<boolean> {
    if (!Number.isSafeInteger(seq)) throw invalid(`levels seq must be an integer, got ${seq}`);
    return this.#stmt.setLevels.run({ repo, upstream, seq, levels: JSON.stringify(levels) }).changes === 1;
  }

  async putSnapshot(snap: SnapshotRecord, upstream: string): Promise<boolean> {
    if (!Number.isSafeInteger(snap.seq)) throw invalid(`snapshot seq must be an integer, got ${snap.seq}`);
    return this.#stmt.putSnapshot.run({ repo: snap.repo, seq: snap.seq, data: JSON.stringify(snap.data), createdAt: snap.createdAt, upstream }).changes === 1;
  }

  async getSnapshot(repo: string, seq: number): Promise<SnapshotRecord | null> {
    const row = this.#stmt.getSnapshot.get(repo, seq) as SnapshotRow | undefined;
    return row ? snapshotFromRow(row) : null;
  }

  async latestSnapshot(repo: string): Promise<SnapshotRecord | null> {
    const row = this.#stmt.latestSnapshot.get(repo) as SnapshotRow | undefined;
    return row ? snapshotFromRow(row) : null;
  }

  async getComposed(repo: string, key: string): Promise<{ digest: string; size: number } | null> {
    const row = this.#stmt.getComposed.get(repo, key) as { digest: string; size: number } | undefined;
    return row ? { digest: row.digest, size: row.size } : null;
  }

  async putComposed(repo: string, key: string, manifest: { digest: string; size: number }, of?: ComposedOf): Promise<void> {
    this.#stmt.putComposed.run(repo, key, manifest.digest, manifest.size, of?.ref ?? null, of?.mode ?? null, of?.seq ?? null, Date.now());
  }

  // ---- Garbage collection (serve/gc) ----
  async gcRetainedComposed(newest: number): Promise<{ repo: string; digest: string }[]> {
    return this.#stmt.gcRetainedComposed.all(Math.max(0, Math.floor(newest))) as { repo: string; digest: string }[];
  }

  async gcDeleteComposed(digest: string): Promise<void> {
    this.#stmt.gcDeleteComposed.run(digest);
  }

  async gcListUnreachable(): Promise<GcUnreachable[]> {
    return (this.#stmt.gcListUnreachable.all() as { digest: string; size: number; first_seen: number }[]).map((r) => ({ digest: r.digest, size: r.size, firstSeen: r.first_seen }));
  }

  async gcNoteUnreachable(items: { digest: string; size: number }[], now: number): Promise<void> {
    this.#db.transaction(() => {
      for (const i of items) this.#stmt.gcNoteUnreachable.run(i.digest, i.size, now);
    })();
  }

  async gcForgetUnreachable(digests: string[]): Promise<void> {
    this.#db.transaction(() => {
      for (const d of digests) this.#stmt.gcForgetUnreachable.run(d);
    })();
  }

  async gcAcquirePass(owner: string, ms: number): Promise<boolean> {
    const now = Date.now();
    return this.#stmt.gcAcquirePass.run({ owner, now, until: now + ms }).changes === 1;
  }

  async gcReleasePass(owner: string): Promise<void> {
    this.#stmt.gcReleasePass.run(owner);
  }

  /**
   * SQLite runs one writer at a time: the flag, the check and a job start (gcStartJob, one
   * statement) are serialized, so a job either started before the flag (the check sees it
   * running) or sees the flag and does not start.
   */
  async gcBeginDelete(owner: string, ms: number, _zombieMs?: number): Promise<boolean> {
    return this.#db
      .transaction(() => {
        const now = Date.now();
        if (this.#stmt.gcSetDeleting.run({ owner, now, until: now + ms }).changes !== 1) return false;
        // SQLite's jobs have no lease: the one process running them marks a dead server's failed at start.
        if (this.#stmt.gcRunningJob.get() !== undefined) {
          this.#stmt.gcEndDelete.run(owner);
          return false;
        }
        return true;
      })
      .immediate();
  }

  async gcRenewDelete(owner: string, ms: number): Promise<boolean> {
    const now = Date.now();
    return this.#stmt.gcRenewDelete.run({ owner, now, until: now + ms }).changes === 1;
  }

  async gcEndDelete(owner: string): Promise<void> {
    this.#stmt.gcEndDelete.run(owner);
  }

  async gcStartJob(id: number, phase: string, startedAt: number): Promise<boolean> {
    return this.#stmt.gcStartJob.run({ id, phase, startedAt, now: Date.now() }).changes === 1;
  }

  async gcSaveReport(report: unknown): Promise<void> {
    this.#stmt.gcSaveReport.run(JSON.stringify(report));
  }

  async gcLastReport(): Promise<unknown | null> {
    const row = this.#stmt.gcLastReport.get() as { last_report: string | null } | undefined;
    return row?.last_report ? JSON.parse(row.last_report) : null;
  }
  // ---- end of garbage collection ----

  async createJob(newJob: NewJob): Promise<JobRecord> {
    const job: Omit<JobRecord, 'id'> = { ...newJob, errorCode: newJob.errorCode ?? null, attempts: newJob.startedAt === null ? 0 : 1 };
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

  async updateJob(id: number, patch: JobPatch): Promise<void> {
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

  async getJob(id: number): Promise<JobRecord | null> {
    const row = this.#stmt.getJob.get(id) as JobRow | undefined;
    return row ? jobFromRow(row) : null;
  }

  async listJobs(repo: string, limit: number): Promise<JobRecord[]> {
    return (this.#stmt.listJobs.all(repo, limit) as JobRow[]).map(jobFromRow);
  }

  async unfinishedJobs(): Promise<JobRecord[]> {
    return (this.#stmt.unfinishedJobs.all() as JobRow[]).map(jobFromRow);
  }

  // --- Access control: the private-artifact index ---
  async markPrivateArtifacts(digests: string[]): Promise<void> {
    this.#db.transaction(() => {
      for (const d of digests) this.#stmt.markPrivate.run(d);
    })();
  }

  async isPrivateArtifact(digest: string): Promise<boolean> {
    return this.#stmt.isPrivate.get(digest) !== undefined;
  }
  // --- end access control ---

  async ping(): Promise<void> {
    this.#db.prepare('SELECT 1').get(); // throws once closed
  }

  async close(): Promise<void> {
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
    addRepo: s(`INSERT INTO repos (name, url, default_branch, created_at, visibility) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (name) DO NOTHING`),
    getRepo: s(`SELECT * FROM repos WHERE name = ?`),
    listRepos: s(`SELECT * FROM repos ORDER BY name`),
    setDefaultBranch: s(`UPDATE repos SET default_branch = ? WHERE name = ?`),
    setRepoUrl: s(`UPDATE repos SET url = ? WHERE name = ?`),
    removeRepo: s(`DELETE FROM repos WHERE name = ?`),
    setVisibility: s(`UPDATE repos SET visibility = ? WHERE name = ?`),
    markPrivate: s(`INSERT INTO private_artifacts (digest) VALUES (?) ON CONFLICT (digest) DO NOTHING`),
    isPrivate: s(`SELECT 1 FROM private_artifacts WHERE digest = ?`),
    removeRepoData: [
      s(`DELETE FROM ref_modes WHERE repo = ?`),
      s(`DELETE FROM commit_builds WHERE repo = ?`),
      s(`DELETE FROM repo_levels WHERE repo = ?`),
      s(`DELETE FROM refs_snapshots WHERE repo = ?`),
      s(`DELETE FROM composed_manifests WHERE repo = ?`),
      s(`DELETE FROM ref_tombstones WHERE repo = ?`),
    ],
    // WHERE true: an upsert after INSERT ... SELECT needs it to parse.
    tombstone: s(`INSERT INTO ref_tombstones (repo, ref, seq)
                  SELECT :repo, :ref, COALESCE((SELECT seq FROM repo_seq WHERE repo = :repo), 0) WHERE true
                  ON CONFLICT (repo, ref) DO UPDATE SET seq = excluded.seq`),
    removeRef: s(`DELETE FROM ref_modes WHERE repo = ? AND ref = ?`),
    listRefNames: s(`SELECT DISTINCT ref FROM ref_modes WHERE repo = ?`),
    resetHistory: [
      s(`DELETE FROM ref_modes WHERE repo = ?`),
      s(`DELETE FROM repo_levels WHERE repo = ?`),
      s(`DELETE FROM refs_snapshots WHERE repo = ?`),
      s(`DELETE FROM composed_manifests WHERE repo = ?`),
    ],
    tombstoneAt: s(`INSERT INTO ref_tombstones (repo, ref, seq) VALUES (:repo, :ref, :seq)
                    ON CONFLICT (repo, ref) DO UPDATE SET seq = MAX(seq, excluded.seq)`),
    removeRefBefore: s(`DELETE FROM ref_modes WHERE repo = ? AND ref = ? AND seq < ?`),
    removeFinishedJobs: s(`DELETE FROM jobs WHERE repo = ? AND state IN ('succeeded', 'failed')`),
    // One statement, so the increment is atomic across connections and processes.
    nextSeq: s(`INSERT INTO repo_seq (repo, seq) VALUES (?, 1)
                ON CONFLICT (repo) DO UPDATE SET seq = seq + 1
                RETURNING seq`),
    getRef: s(`SELECT * FROM ref_modes WHERE repo = ? AND ref = ? AND mode = ?`),
    getRefModes: s(`SELECT * FROM ref_modes WHERE repo = ? AND ref = ? ORDER BY mode`),
    listRefs: s(`SELECT * FROM ref_modes WHERE repo = ? ORDER BY ref, mode`),
    // The registration check and the seq comparison live in the statement, so no concurrent
    // writer (a removal, a re-point, a newer build) can slip in between.
    publishRef: s(`INSERT INTO ref_modes (repo, ref, mode, commit_oid, seq, built_at, view)
                   SELECT :repo, :ref, :mode, :commit, :seq, :builtAt, :view
                   WHERE EXISTS (SELECT 1 FROM repos WHERE name = :repo AND url = :upstream)
                     AND NOT EXISTS (SELECT 1 FROM ref_tombstones WHERE repo = :repo AND ref = :ref AND seq >= :seq)
                   ON CONFLICT (repo, ref, mode) DO UPDATE SET
                     commit_oid = excluded.commit_oid,
                     seq = excluded.seq,
                     built_at = excluded.built_at,
                     view = excluded.view
                   WHERE excluded.seq > ref_modes.seq`),
    putCommitBuild: s(`INSERT INTO commit_builds (repo, commit_oid, stage, data, recorded)
                       VALUES (:repo, :commit, :stage, :data, :recorded)
                       ON CONFLICT (repo, commit_oid) DO UPDATE SET
                         stage = excluded.stage, data = excluded.data, recorded = excluded.recorded
                       WHERE NOT (commit_builds.stage = 'files' AND excluded.stage = 'shallow')`),
    getCommitBuild: s(`SELECT stage, data FROM commit_builds WHERE repo = ? AND commit_oid = ?`),
    recentCommitBuilds: s(`SELECT data FROM commit_builds WHERE repo = ? ORDER BY recorded DESC, rowid DESC LIMIT ?`),
    getLevels: s(`SELECT levels, seq FROM repo_levels WHERE repo = ? AND upstream = ?`),
    // Applied only for the registered upstream, and over a chain of another upstream or of an
    // older sync: one statement, so no other writer slips in between.
    setLevels: s(`INSERT INTO repo_levels (repo, levels, upstream, seq)
                  SELECT :repo, :levels, :upstream, :seq
                  WHERE EXISTS (SELECT 1 FROM repos WHERE name = :repo AND url = :upstream)
                  ON CONFLICT (repo) DO UPDATE SET levels = excluded.levels, upstream = excluded.upstream, seq = excluded.seq
                  WHERE repo_levels.upstream != excluded.upstream OR excluded.seq > repo_levels.seq`),
    putSnapshot: s(`INSERT INTO refs_snapshots (repo, seq, data, created_at)
                    SELECT :repo, :seq, :data, :createdAt
                    WHERE EXISTS (SELECT 1 FROM repos WHERE name = :repo AND url = :upstream)
                    ON CONFLICT (repo, seq) DO NOTHING`),
    getSnapshot: s(`SELECT * FROM refs_snapshots WHERE repo = ? AND seq = ?`),
    latestSnapshot: s(`SELECT * FROM refs_snapshots WHERE repo = ? ORDER BY seq DESC LIMIT 1`),
    getComposed: s(`SELECT digest, size FROM composed_manifests WHERE repo = ? AND inputs = ?`),
    putComposed: s(`INSERT INTO composed_manifests (repo, inputs, digest, size, ref, mode, seq, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (repo, inputs) DO NOTHING`),
    // ---- garbage collection ----
    gcRetainedComposed: s(`SELECT repo, digest FROM (
                             SELECT repo, digest, ROW_NUMBER() OVER (PARTITION BY repo, ref, mode ORDER BY seq DESC, created_at DESC) AS n
                             FROM composed_manifests c WHERE ref IS NOT NULL
                               AND EXISTS (SELECT 1 FROM ref_modes r WHERE r.repo = c.repo AND r.ref = c.ref)) WHERE n <= ?`),
    gcDeleteComposed: s(`DELETE FROM composed_manifests WHERE digest = ?`),
    gcListUnreachable: s(`SELECT digest, size, first_seen FROM gc_unreachable ORDER BY first_seen, digest`),
    gcNoteUnreachable: s(`INSERT INTO gc_unreachable (digest, size, first_seen) VALUES (?, ?, ?) ON CONFLICT (digest) DO NOTHING`),
    gcForgetUnreachable: s(`DELETE FROM gc_unreachable WHERE digest = ?`),
    gcAcquirePass: s(`UPDATE gc_state SET pass_owner = :owner, pass_until = :until
                      WHERE id = 1 AND (pass_owner IS NULL OR pass_until < :now OR pass_owner = :owner)`),
    gcReleasePass: s(`UPDATE gc_state SET pass_owner = NULL, pass_until = NULL WHERE id = 1 AND pass_owner = ?`),
    gcSetDeleting: s(`UPDATE gc_state SET deleting_owner = :owner, deleting_until = :until
                      WHERE id = 1 AND (deleting_owner IS NULL OR deleting_until < :now OR deleting_owner = :owner)`),
    gcRenewDelete: s(`UPDATE gc_state SET deleting_until = :until WHERE id = 1 AND deleting_owner = :owner AND deleting_until >= :now`),
    gcEndDelete: s(`UPDATE gc_state SET deleting_owner = NULL, deleting_until = NULL WHERE id = 1 AND deleting_owner = ?`),
    gcRunningJob: s(`SELECT 1 FROM jobs WHERE state = 'running' LIMIT 1`),
    gcStartJob: s(`UPDATE jobs SET state = 'running', phase = :phase, started_at = :startedAt
                   WHERE id = :id
                     AND NOT EXISTS (SELECT 1 FROM gc_state WHERE id = 1 AND deleting_owner IS NOT NULL AND deleting_until >= :now)`),
    gcSaveReport: s(`UPDATE gc_state SET last_report = ? WHERE id = 1`),
    gcLastReport: s(`SELECT last_report FROM gc_state WHERE id = 1`),
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





