/**
 * MetadataStore on PostgreSQL (the `postgres` client), for several servers and workers sharing
 * one database. Same semantics as the SQLite store (sqlite/sqlite-store.ts), method for method.
 *
 * Every conditional write (publishRef, nextSeq, setLevels, putSnapshot, putCommitBuild) is one
 * statement, so there is no read-then-write window. Writes that depend on the repository's
 * registration first take a share lock on its `repos` row, and the writes that change what they
 * depend on (re-pointing, removal, ref removal) take it exclusively: under READ COMMITTED a
 * statement's snapshot is taken when it starts, so without that lock a publish could check the
 * tombstones before a concurrent removeRef committed and land after it (SQLite gets the same
 * order from its single writer).
 *
 * BIGINT columns come back as JS numbers (every value here is a ms timestamp, seq, size or id,
 * well within 2^53).
 */
import postgres from 'postgres';
import type { Sql, TransactionSql } from 'postgres';
import type { ComposedOf, GcUnreachable, JobPatch, JobRecord, LeaseFence, MetadataStore, NewJob, RefMode, RefRecord, RepoRecord, RepoVisibility, SnapshotRecord } from '../metadata-store.js';
import { SnapError, invalid } from '../../util/errors.js';
import { redactUrl } from '../../util/redact.js';
import { MIGRATIONS, migrate } from './migrations.js';
import { jobFromRow, refFromRow, repoFromRow, snapshotFromRow, type JobRow, type RefRow, type RepoRow, type SnapshotRow } from '../rows.js';

/** For the PostgreSQL queue, which reads jobs rows itself. */
export { jobFromRow, type JobRow };

export { MIGRATIONS };
export const SCHEMA_VERSION = MIGRATIONS.length;

export interface PostgresStoreOptions {
  /** Connections in the pool (default 10). */
  max?: number;
  /** Seconds to wait for a connection before failing (default 10). */
  connectTimeoutSeconds?: number;
}





/** JobRecord field -> jobs column, for updateJob (`ref` is fixed at creation, as in SQLite). */
const JOB_COLUMNS = {
  state: 'state',
  phase: 'phase',
  error: 'error',
  errorCode: 'error_code',
  commit: 'commit_oid',
  createdAt: 'created_at',
  startedAt: 'started_at',
  finishedAt: 'finished_at',
} as const satisfies Partial<Record<keyof JobPatch, string>>;

/** The client, with BIGINT (oid 20) read as a number instead of a string. */
function connect(url: string, opts: PostgresStoreOptions): Sql<{ bigint: number }> {
  return postgres(url, {
    max: opts.max ?? 10,
    connect_timeout: opts.connectTimeoutSeconds ?? 10,
    onnotice: () => {}, // "relation already exists, skipping" and the like
    types: {
      bigint: {
        to: 20,
        from: [20],
        serialize: (x: number) => String(x),
        parse: (x: string) => Number(x),
      },
    },
  });
}

export class PostgresMetadataStore implements MetadataStore {
  /** The connection pool, shared with the PostgreSQL job queue (queue/postgres/). */
  readonly sql: Sql<{ bigint: number }>;
  #closed = false;

  private constructor(sql: Sql<{ bigint: number }>) {
    this.sql = sql;
  }

  /** Connects and brings the schema up to date (safe when several processes start at once). */
  static async open(url: string, opts: PostgresStoreOptions = {}): Promise<PostgresMetadataStore> {
    const sql = connect(url, opts);
    try {
      await migrate(sql);
    } catch (err) {
      await sql.end({ timeout: 1 }).catch(() => {});
      if (err instanceof SnapError) throw err;
      // One line naming the database, never its password.
      const why = redactUrl(String((err as Error).message ?? err)).split('\n')[0];
      throw new SnapError('unreachable', `cannot open the metadata database ${redactUrl(url)}: ${why}`, { cause: err });
    }
    return new PostgresMetadataStore(sql);
  }

  async ping(): Promise<void> {
    await this.sql`SELECT 1`;
  }

  async addRepo(rec: RepoRecord): Promise<boolean> {
    const res = await this.sql`
      INSERT INTO repos (name, url, default_branch, created_at, visibility)
      VALUES (${rec.name}, ${rec.url}, ${rec.defaultBranch}, ${rec.createdAt}, ${rec.visibility})
      ON CONFLICT (name) DO NOTHING`;
    return res.count === 1;
  }

  async getRepo(name: string): Promise<RepoRecord | null> {
    const rows = await this.sql<RepoRow[]>`SELECT * FROM repos WHERE name = ${name}`;
    return rows[0] ? repoFromRow(rows[0]) : null;
  }

  async listRepos(): Promise<RepoRecord[]> {
    // COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
    const rows = await this.sql<RepoRow[]>`SELECT * FROM repos ORDER BY name COLLATE "C"`;
    return rows.map(repoFromRow);
  }

  async setDefaultBranch(name: string, branch: string | null): Promise<void> {
    const res = await this.sql`UPDATE repos SET default_branch = ${branch} WHERE name = ${name}`;
    if (res.count === 0) throw new SnapError('not-found', `repository ${name} is not registered`);
  }

  async setRepoUrl(name: string, url: string, opts: { newUpstream?: boolean; defaultBranch?: string | null; visibility?: RepoVisibility } = {}): Promise<void> {
    await this.sql.begin(async (tx) => {
      // The UPDATE locks the repository row: publishes of this repository wait for the commit.
      const res = await tx`UPDATE repos SET url = ${url} WHERE name = ${name}`;
      if (res.count === 0) throw new SnapError('not-found', `repository ${name} is not registered`);
      if (opts.visibility) await tx`UPDATE repos SET visibility = ${opts.visibility} WHERE name = ${name}`;
      if (!opts.newUpstream) return;
      // Another upstream: every ref record goes (tombstoned at the current seq, so a build of
      // the old upstream still running cannot bring one back), and so do the level chain, the
      // snapshots and the composed manifests: none of the old upstream's history may end up in
      // the new one's manifests.
      await tx`
        INSERT INTO ref_tombstones (repo, ref, seq)
        SELECT DISTINCT repo, ref, COALESCE((SELECT seq FROM repo_seq WHERE repo = ${name}), 0)
        FROM ref_modes WHERE repo = ${name}
        ON CONFLICT (repo, ref) DO UPDATE SET seq = excluded.seq`;
      await tx`DELETE FROM ref_modes WHERE repo = ${name}`;
      await tx`DELETE FROM repo_levels WHERE repo = ${name}`;
      await tx`DELETE FROM refs_snapshots WHERE repo = ${name}`;
      await tx`DELETE FROM composed_manifests WHERE repo = ${name}`;
      if (opts.defaultBranch !== undefined) {
        await tx`UPDATE repos SET default_branch = ${opts.defaultBranch} WHERE name = ${name}`;
      }
    });
  }

  async removeRepo(name: string): Promise<RepoRecord | null> {
    return this.sql.begin(async (tx) => {
      const rows = await tx<RepoRow[]>`SELECT * FROM repos WHERE name = ${name} FOR UPDATE`;
      if (!rows[0]) return null;
      await tx`DELETE FROM ref_modes WHERE repo = ${name}`;
      await tx`DELETE FROM commit_builds WHERE repo = ${name}`;
      await tx`DELETE FROM repo_levels WHERE repo = ${name}`;
      await tx`DELETE FROM refs_snapshots WHERE repo = ${name}`;
      await tx`DELETE FROM composed_manifests WHERE repo = ${name}`;
      await tx`DELETE FROM ref_tombstones WHERE repo = ${name}`;
      // Queued and running jobs stay, so their end is still recorded; the seq counter stays.
      await tx`DELETE FROM jobs WHERE repo = ${name} AND state IN ('succeeded', 'failed', 'dead')`;
      await tx`DELETE FROM repos WHERE name = ${name}`;
      return repoFromRow(rows[0]);
    });
  }

  async nextSeq(repo: string, fence?: LeaseFence): Promise<number> {
    // One statement, so the increment is atomic across connections and processes; fenced, the
    // lease check is in it too (a reclaim needs the lease run out, so a stamp that passes is
    // earlier than any reclaim, and the new holder's stamp is larger).
    const rows = fence
      ? await this.sql<{ seq: number }[]>`
          INSERT INTO repo_seq (repo, seq)
          SELECT ${repo}, 1 WHERE EXISTS (
            SELECT 1 FROM jobs WHERE id = ${fence.job} AND lease_token = ${fence.token} AND state = 'running'
              AND lease_until > (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
          ON CONFLICT (repo) DO UPDATE SET seq = repo_seq.seq + 1
          RETURNING seq`
      : await this.sql<{ seq: number }[]>`
          INSERT INTO repo_seq (repo, seq) VALUES (${repo}, 1)
          ON CONFLICT (repo) DO UPDATE SET seq = repo_seq.seq + 1
          RETURNING seq`;
    if (!rows[0]) throw new SnapError('conflict', `job ${fence!.job} lost its lease before its fetch was stamped: another worker builds ${repo} now`);
    return rows[0].seq;
  }

  async getRef(repo: string, ref: string, mode: RefMode = 'full'): Promise<RefRecord | null> {
    const rows = await this.sql<RefRow[]>`SELECT * FROM ref_modes WHERE repo = ${repo} AND ref = ${ref} AND mode = ${mode}`;
    return rows[0] ? refFromRow(rows[0]) : null;
  }

  async getRefModes(repo: string, ref: string): Promise<RefRecord[]> {
    const rows = await this.sql<RefRow[]>`SELECT * FROM ref_modes WHERE repo = ${repo} AND ref = ${ref} ORDER BY mode COLLATE "C"`;
    return rows.map(refFromRow);
  }

  async listRefs(repo: string): Promise<RefRecord[]> {
    const rows = await this.sql<RefRow[]>`SELECT * FROM ref_modes WHERE repo = ${repo} ORDER BY ref COLLATE "C", mode COLLATE "C"`;
    return rows.map(refFromRow);
  }

  async publishRef(rec: RefRecord, upstream: string): Promise<boolean> {
    if (!Number.isSafeInteger(rec.seq)) throw invalid(`ref seq must be an integer, got ${rec.seq}`);
    const view = JSON.stringify(rec.view);
    return this.#whileRegistered(rec.repo, upstream, async (tx) => {
      // The registration check, the tombstone check and the seq comparison live in the one
      // statement: a newer build that landed first always wins.
      const res = await tx`
        INSERT INTO ref_modes (repo, ref, mode, commit_oid, seq, built_at, view)
        SELECT ${rec.repo}, ${rec.ref}, ${rec.mode}, ${rec.commit}, ${rec.seq}, ${rec.builtAt}, ${view}
        WHERE EXISTS (SELECT 1 FROM repos WHERE name = ${rec.repo} AND url = ${upstream})
          AND NOT EXISTS (SELECT 1 FROM ref_tombstones WHERE repo = ${rec.repo} AND ref = ${rec.ref} AND seq >= ${rec.seq})
        ON CONFLICT (repo, ref, mode) DO UPDATE SET
          commit_oid = excluded.commit_oid,
          seq = excluded.seq,
          built_at = excluded.built_at,
          view = excluded.view
        WHERE excluded.seq > ref_modes.seq`;
      return res.count === 1;
    });
  }

  async removeRef(repo: string, ref: string, seq?: number): Promise<boolean> {
    if (seq !== undefined && !Number.isSafeInteger(seq)) throw invalid(`ref seq must be an integer, got ${seq}`);
    return this.sql.begin(async (tx) => {
      // Exclusive against publishes of this repository (see the file comment).
      await tx`SELECT 1 FROM repos WHERE name = ${repo} FOR UPDATE`;
      if (seq === undefined) {
        await tx`
          INSERT INTO ref_tombstones (repo, ref, seq)
          VALUES (${repo}, ${ref}, COALESCE((SELECT seq FROM repo_seq WHERE repo = ${repo}), 0))
          ON CONFLICT (repo, ref) DO UPDATE SET seq = excluded.seq`;
        const res = await tx`DELETE FROM ref_modes WHERE repo = ${repo} AND ref = ${ref}`;
        return res.count > 0;
      }
      await tx`
        INSERT INTO ref_tombstones (repo, ref, seq) VALUES (${repo}, ${ref}, ${seq})
        ON CONFLICT (repo, ref) DO UPDATE SET seq = GREATEST(ref_tombstones.seq, excluded.seq)`;
      const res = await tx`DELETE FROM ref_modes WHERE repo = ${repo} AND ref = ${ref} AND seq < ${seq}`;
      return res.count > 0;
    });
  }

  async putCommitBuild(repo: string, commit: string, stage: 'shallow' | 'files', data: unknown): Promise<void> {
    // A stage never goes back: 'files' is not replaced by 'shallow'.
    await this.sql`
      INSERT INTO commit_builds (repo, commit_oid, stage, data, recorded)
      VALUES (${repo}, ${commit}, ${stage}, ${JSON.stringify(data)}, ${Date.now()})
      ON CONFLICT (repo, commit_oid) DO UPDATE SET
        stage = excluded.stage, data = excluded.data, recorded = excluded.recorded
      WHERE NOT (commit_builds.stage = 'files' AND excluded.stage = 'shallow')`;
  }

  async getCommitBuild(repo: string, commit: string): Promise<{ stage: 'shallow' | 'files'; data: unknown } | null> {
    const rows = await this.sql<{ stage: 'shallow' | 'files'; data: string }[]>`
      SELECT stage, data FROM commit_builds WHERE repo = ${repo} AND commit_oid = ${commit}`;
    return rows[0] ? { stage: rows[0].stage, data: JSON.parse(rows[0].data) } : null;
  }

  async recentCommitBuilds(repo: string, limit: number): Promise<unknown[]> {
    // id: insertion order breaks ties, as SQLite's rowid does.
    const rows = await this.sql<{ data: string }[]>`
      SELECT data FROM commit_builds WHERE repo = ${repo} ORDER BY recorded DESC, id DESC LIMIT ${sqlLimit(limit)}`;
    return rows.map((r) => JSON.parse(r.data));
  }

  async getLevels(repo: string, upstream: string): Promise<{ seq: number; levels: unknown } | null> {
    const rows = await this.sql<{ levels: string; seq: number }[]>`
      SELECT levels, seq FROM repo_levels WHERE repo = ${repo} AND upstream = ${upstream}`;
    return rows[0] ? { seq: rows[0].seq, levels: JSON.parse(rows[0].levels) } : null;
  }

  async setLevels(repo: string, upstream: string, seq: number, levels: unknown): Promise<boolean> {
    if (!Number.isSafeInteger(seq)) throw invalid(`levels seq must be an integer, got ${seq}`);
    const json = JSON.stringify(levels);
    return this.#whileRegistered(repo, upstream, async (tx) => {
      // Applied only for the registered upstream, over a chain of another upstream or of an older sync.
      const res = await tx`
        INSERT INTO repo_levels (repo, levels, upstream, seq)
        SELECT ${repo}, ${json}, ${upstream}, ${seq}
        WHERE EXISTS (SELECT 1 FROM repos WHERE name = ${repo} AND url = ${upstream})
        ON CONFLICT (repo) DO UPDATE SET levels = excluded.levels, upstream = excluded.upstream, seq = excluded.seq
        WHERE repo_levels.upstream <> excluded.upstream OR excluded.seq > repo_levels.seq`;
      return res.count === 1;
    });
  }

  async putSnapshot(snap: SnapshotRecord, upstream: string): Promise<boolean> {
    if (!Number.isSafeInteger(snap.seq)) throw invalid(`snapshot seq must be an integer, got ${snap.seq}`);
    const data = JSON.stringify(snap.data);
    return this.#whileRegistered(snap.repo, upstream, async (tx) => {
      const res = await tx`
        INSERT INTO refs_snapshots (repo, seq, data, created_at)
        SELECT ${snap.repo}, ${snap.seq}, ${data}, ${snap.createdAt}
        WHERE EXISTS (SELECT 1 FROM repos WHERE name = ${snap.repo} AND url = ${upstream})
        ON CONFLICT (repo, seq) DO NOTHING`;
      return res.count === 1;
    });
  }

  async getSnapshot(repo: string, seq: number): Promise<SnapshotRecord | null> {
    const rows = await this.sql<SnapshotRow[]>`SELECT * FROM refs_snapshots WHERE repo = ${repo} AND seq = ${seq}`;
    return rows[0] ? snapshotFromRow(rows[0]) : null;
  }

  async latestSnapshot(repo: string): Promise<SnapshotRecord | null> {
    const rows = await this.sql<SnapshotRow[]>`SELECT * FROM refs_snapshots WHERE repo = ${repo} ORDER BY seq DESC LIMIT 1`;
    return rows[0] ? snapshotFromRow(rows[0]) : null;
  }

  async getComposed(repo: string, key: string): Promise<{ digest: string; size: number } | null> {
    const rows = await this.sql<{ digest: string; size: number }[]>`
      SELECT digest, size FROM composed_manifests WHERE repo = ${repo} AND inputs = ${key}`;
    return rows[0] ? { digest: rows[0].digest, size: rows[0].size } : null;
  }

  async putComposed(repo: string, key: string, manifest: { digest: string; size: number }, of?: ComposedOf): Promise<void> {
    await this.sql`
      INSERT INTO composed_manifests (repo, inputs, digest, size, ref, mode, seq, created_at)
      VALUES (${repo}, ${key}, ${manifest.digest}, ${manifest.size}, ${of?.ref ?? null}, ${of?.mode ?? null}, ${of?.seq ?? null}, ${Date.now()})
      ON CONFLICT (repo, inputs) DO NOTHING`;
  }

  // ---- Garbage collection (serve/gc). Times of the lease and the flag are on the database's clock. ----
  async gcRetainedComposed(newest: number): Promise<{ repo: string; digest: string }[]> {
    const rows = await this.sql<{ repo: string; digest: string }[]>`
      SELECT repo, digest FROM (
        SELECT repo, digest, ROW_NUMBER() OVER (PARTITION BY repo, ref, mode ORDER BY seq DESC, created_at DESC) AS n
        FROM composed_manifests c WHERE ref IS NOT NULL
          AND EXISTS (SELECT 1 FROM ref_modes r WHERE r.repo = c.repo AND r.ref = c.ref)) r
      WHERE n <= ${Math.max(0, Math.floor(newest))}`;
    return rows.map((r) => ({ repo: r.repo, digest: r.digest }));
  }

  async gcDeleteComposed(digest: string): Promise<void> {
    await this.sql`DELETE FROM composed_manifests WHERE digest = ${digest}`;
  }

  async gcListUnreachable(): Promise<GcUnreachable[]> {
    const rows = await this.sql<{ digest: string; size: number; first_seen: number }[]>`
      SELECT digest, size, first_seen FROM gc_unreachable ORDER BY first_seen, digest`;
    return rows.map((r) => ({ digest: r.digest, size: Number(r.size), firstSeen: Number(r.first_seen) }));
  }

  async gcNoteUnreachable(items: { digest: string; size: number }[], now: number): Promise<void> {
    for (let i = 0; i < items.length; i += 1000) {
      const part = items.slice(i, i + 1000);
      await this.sql`
        INSERT INTO gc_unreachable (digest, size, first_seen)
        SELECT d, s, ${now} FROM unnest(${part.map((p) => p.digest)}::text[], ${part.map((p) => p.size)}::bigint[]) AS u(d, s)
        ON CONFLICT (digest) DO NOTHING`;
    }
  }

  async gcForgetUnreachable(digests: string[]): Promise<void> {
    for (let i = 0; i < digests.length; i += 1000) {
      await this.sql`DELETE FROM gc_unreachable WHERE digest = ANY(${digests.slice(i, i + 1000)}::text[])`;
    }
  }

  async gcAcquirePass(owner: string, ms: number): Promise<boolean> {
    const rows = await this.sql`
      UPDATE gc_state SET pass_owner = ${owner}, pass_until = ${dbNow(this.sql)} + ${ms}
      WHERE id = 1 AND (pass_owner IS NULL OR pass_until < ${dbNow(this.sql)} OR pass_owner = ${owner})
      RETURNING id`;
    return rows.length === 1;
  }

  async gcReleasePass(owner: string): Promise<void> {
    await this.sql`UPDATE gc_state SET pass_owner = NULL, pass_until = NULL WHERE id = 1 AND pass_owner = ${owner}`;
  }

  /**
   * The handshake with job claims, correct under READ COMMITTED by row-lock order on gc_state's
   * one row. A claim (queue/postgres/pg-queue.ts, and gcStartJob) first reads that row FOR SHARE
   * in its transaction, claims nothing if "deleting" is set, and holds the share lock until it
   * commits the job as running. Here the flag is set by an UPDATE committed on its own, and only
   * then, in a new statement (a new snapshot), are running jobs counted:
   * - a claim that locked the row first makes the UPDATE wait for its commit, so the count
   *   (later still) sees its job running: no delete this time;
   * - an UPDATE that locked the row first makes the claim's FOR SHARE wait; PostgreSQL then
   *   re-reads the row's new version, sees "deleting", and claims nothing.
   * Either way no job starts between the count and gcEndDelete (or the flag's expiry, renewed
   * before each delete). A running job whose lease expired more than zombieMs ago is dead.
   */
  async gcBeginDelete(owner: string, ms: number, zombieMs: number): Promise<boolean> {
    const set = await this.sql`
      UPDATE gc_state SET deleting_owner = ${owner}, deleting_until = ${dbNow(this.sql)} + ${ms}
      WHERE id = 1 AND (deleting_owner IS NULL OR deleting_until < ${dbNow(this.sql)} OR deleting_owner = ${owner})
      RETURNING id`;
    if (set.length !== 1) return false;
    const running = await this.sql`
      SELECT 1 FROM jobs WHERE state = 'running' AND (lease_until IS NULL OR lease_until >= ${dbNow(this.sql)} - ${zombieMs}) LIMIT 1`;
    if (running.length === 0) return true;
    await this.gcEndDelete(owner);
    return false;
  }

  async gcRenewDelete(owner: string, ms: number): Promise<boolean> {
    const rows = await this.sql`
      UPDATE gc_state SET deleting_until = ${dbNow(this.sql)} + ${ms}
      WHERE id = 1 AND deleting_owner = ${owner} AND deleting_until >= ${dbNow(this.sql)}
      RETURNING id`;
    return rows.length === 1;
  }

  async gcEndDelete(owner: string): Promise<void> {
    await this.sql`UPDATE gc_state SET deleting_owner = NULL, deleting_until = NULL WHERE id = 1 AND deleting_owner = ${owner}`;
  }

  async gcStartJob(id: number, phase: string, startedAt: number): Promise<boolean> {
    return this.sql.begin(async (tx) => {
      if (!(await gcClaimAllowed(tx))) return false;
      await tx`UPDATE jobs SET state = 'running', phase = ${phase}, started_at = ${startedAt} WHERE id = ${id}`;
      return true;
    });
  }

  async gcSaveReport(report: unknown): Promise<void> {
    await this.sql`UPDATE gc_state SET last_report = ${JSON.stringify(report)} WHERE id = 1`;
  }

  async gcLastReport(): Promise<unknown | null> {
    const rows = await this.sql<{ last_report: string | null }[]>`SELECT last_report FROM gc_state WHERE id = 1`;
    return rows[0]?.last_report ? JSON.parse(rows[0].last_report) : null;
  }
  // ---- end of garbage collection ----

  async createJob(job: NewJob): Promise<JobRecord> {
    // A plain insert: coalescing of queued jobs is the queue's (queue/postgres/).
    const rows = await this.sql<JobRow[]>`
      INSERT INTO jobs (repo, kind, ref, state, phase, error, error_code, commit_oid, created_at, started_at, finished_at)
      VALUES (${job.repo}, ${job.kind}, ${job.ref}, ${job.state}, ${job.phase}, ${job.error}, ${job.errorCode ?? null},
              ${job.commit}, ${job.createdAt}, ${job.startedAt}, ${job.finishedAt})
      RETURNING *`;
    return jobFromRow(rows[0]!);
  }

  async updateJob(id: number, patch: JobPatch): Promise<void> {
    const set: Record<string, string | number | null> = {};
    for (const [field, column] of Object.entries(JOB_COLUMNS)) {
      const value = patch[field as keyof JobPatch];
      if (value !== undefined) set[column] = value as string | number | null;
    }
    const columns = Object.keys(set);
    const res =
      columns.length > 0
        ? await this.sql`UPDATE jobs SET ${this.sql(set, columns)} WHERE id = ${id}`
        : await this.sql`UPDATE jobs SET phase = phase WHERE id = ${id}`;
    if (res.count === 0) throw new SnapError('not-found', `job ${id} not found`);
  }

  async getJob(id: number): Promise<JobRecord | null> {
    if (!Number.isSafeInteger(id)) return null;
    const rows = await this.sql<JobRow[]>`SELECT * FROM jobs WHERE id = ${id}`;
    return rows[0] ? jobFromRow(rows[0]) : null;
  }

  async listJobs(repo: string, limit: number): Promise<JobRecord[]> {
    const rows = await this.sql<JobRow[]>`SELECT * FROM jobs WHERE repo = ${repo} ORDER BY id DESC LIMIT ${sqlLimit(limit)}`;
    return rows.map(jobFromRow);
  }

  async unfinishedJobs(): Promise<JobRecord[]> {
    const rows = await this.sql<JobRow[]>`SELECT * FROM jobs WHERE state IN ('queued', 'running') ORDER BY id`;
    return rows.map(jobFromRow);
  }

  // --- Access control: the private-artifact index ---
  async markPrivateArtifacts(digests: string[]): Promise<void> {
    if (digests.length === 0) return;
    await this.sql`INSERT INTO private_artifacts (digest) SELECT unnest(${this.sql.array(digests)}::text[]) ON CONFLICT (digest) DO NOTHING`;
  }

  async isPrivateArtifact(digest: string): Promise<boolean> {
    const rows = await this.sql`SELECT 1 FROM private_artifacts WHERE digest = ${digest}`;
    return rows.count > 0;
  }
  // --- end access control ---

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.sql.end({ timeout: 5 });
  }

  /**
   * Runs `write` in a transaction holding a share lock on the repository's row, if it is
   * registered for `upstream`; false (nothing written) if it is not. Concurrent publishes do not
   * block each other; a removal or re-point waits for them, and they for it.
   */
  async #whileRegistered(repo: string, upstream: string, write: (tx: TransactionSql<{ bigint: number }>) => Promise<boolean>): Promise<boolean> {
    return this.sql.begin(async (tx) => {
      const locked = await tx`SELECT 1 FROM repos WHERE name = ${repo} AND url = ${upstream} FOR SHARE`;
      if (locked.count === 0) return false;
      return write(tx);
    });
  }
}

/** Milliseconds since the epoch on the database's clock. */
function dbNow(sql: Sql<any> | TransactionSql<any>) {
  return sql`(extract(epoch from clock_timestamp()) * 1000)::bigint`;
}

/**
 * A job claim's half of the GC handshake (see gcBeginDelete): share-lock gc_state's row for the
 * rest of the transaction `tx`; false while a GC delete phase is on.
 */
export async function gcClaimAllowed(tx: TransactionSql<any>): Promise<boolean> {
  const rows = await tx`
    SELECT 1 FROM gc_state
    WHERE id = 1 AND (deleting_owner IS NULL OR deleting_until < ${dbNow(tx)})
    FOR SHARE`;
  return rows.length === 1;
}

/** A negative limit is no limit, as in SQLite (LIMIT NULL is LIMIT ALL in PostgreSQL). */
function sqlLimit(limit: number): number | null {
  return limit < 0 ? null : Math.floor(limit);
}




