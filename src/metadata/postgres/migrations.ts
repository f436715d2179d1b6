/**
 * Versioned schema migrations for the PostgreSQL metadata store. They run at start-up in one
 * transaction under a transaction-scoped advisory lock, so N processes starting at once migrate
 * once: the others wait on the lock, then find every version applied.
 */
import type { Sql } from 'postgres';
import { SnapError } from '../../util/errors.js';

/** Arbitrary, fixed: the advisory lock key every snapclone process migrates under. */
export const MIGRATION_LOCK_KEY = 0x736e6170_636c6f6en; // "snapclon"

/**
 * MIGRATIONS[i] takes the schema from version i to i + 1 (statements run in order); append
 * only, never edit a shipped one. JSON is stored as text: it round-trips exactly as written.
 */
export const MIGRATIONS: readonly (readonly string[])[] = [
  [
    `CREATE TABLE repos (
      name TEXT PRIMARY KEY,
      url TEXT NOT NULL,
      default_branch TEXT,
      created_at BIGINT NOT NULL
    )`,
    `CREATE TABLE repo_seq (
      repo TEXT PRIMARY KEY,
      seq BIGINT NOT NULL
    )`,
    `CREATE TABLE ref_modes (
      repo TEXT NOT NULL,
      ref TEXT NOT NULL,
      mode TEXT NOT NULL CHECK (mode IN ('shallow', 'files', 'full')),
      commit_oid TEXT,
      seq BIGINT NOT NULL,
      built_at BIGINT NOT NULL,
      view TEXT NOT NULL,
      PRIMARY KEY (repo, ref, mode)
    )`,
    // id: insertion order, the tie-break of recentCommitBuilds (SQLite's rowid).
    `CREATE TABLE commit_builds (
      id BIGSERIAL NOT NULL,
      repo TEXT NOT NULL,
      commit_oid TEXT NOT NULL,
      stage TEXT NOT NULL CHECK (stage IN ('shallow', 'files')),
      data TEXT NOT NULL,
      recorded BIGINT NOT NULL,
      PRIMARY KEY (repo, commit_oid)
    )`,
    `CREATE INDEX commit_builds_recent ON commit_builds (repo, recorded, id)`,
    `CREATE TABLE repo_levels (
      repo TEXT PRIMARY KEY,
      levels TEXT NOT NULL,
      upstream TEXT NOT NULL,
      seq BIGINT NOT NULL
    )`,
    `CREATE TABLE refs_snapshots (
      repo TEXT NOT NULL,
      seq BIGINT NOT NULL,
      data TEXT NOT NULL,
      created_at BIGINT NOT NULL,
      PRIMARY KEY (repo, seq)
    )`,
    // A removed ref: a build that fetched before the removal (seq <= this one) cannot bring it back.
    `CREATE TABLE ref_tombstones (
      repo TEXT NOT NULL,
      ref TEXT NOT NULL,
      seq BIGINT NOT NULL,
      PRIMARY KEY (repo, ref)
    )`,
    `CREATE TABLE composed_manifests (
      repo TEXT NOT NULL,
      inputs TEXT NOT NULL,
      digest TEXT NOT NULL,
      size BIGINT NOT NULL,
      PRIMARY KEY (repo, inputs)
    )`,
    // The PostgreSQL job queue (queue/postgres/) relies on exactly these columns and indexes.
    // BIGSERIAL: an id is never reused, so a stale id cannot name a newer job.
    `CREATE TABLE jobs (
      id BIGSERIAL PRIMARY KEY,
      repo TEXT NOT NULL,
      kind TEXT NOT NULL,
      ref TEXT,
      state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'dead')),
      phase TEXT NOT NULL,
      error TEXT,
      error_code TEXT,
      commit_oid TEXT,
      created_at BIGINT NOT NULL,
      started_at BIGINT,
      finished_at BIGINT,
      attempts INT NOT NULL DEFAULT 0,
      lease_owner TEXT,
      lease_token TEXT,
      lease_until BIGINT
    )`,
    // Coalescing: at most one queued job per (repository, ref).
    `CREATE UNIQUE INDEX jobs_one_queued ON jobs (repo, (coalesce(ref, ''))) WHERE state = 'queued'`,
    `CREATE INDEX jobs_open ON jobs (id) WHERE state IN ('queued', 'running')`,
    `CREATE INDEX jobs_by_repo ON jobs (repo, id)`,
  ],
  // access: who may read a repository (existing ones stay public, as they were served), and the
  // digests of private repositories' manifests and artifacts, served only through signed URLs.
  [
    `ALTER TABLE repos ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'private'))`,
    `CREATE TABLE private_artifacts (
      digest TEXT PRIMARY KEY
    )`,
  ],
  // gc: which record each composed manifest is of (retention), artifacts seen unreachable since
  // when, and the one-row GC state (the pass lease, the "deleting" flag claims check, the last report).
  [
    `ALTER TABLE composed_manifests ADD COLUMN ref TEXT`,
    `ALTER TABLE composed_manifests ADD COLUMN mode TEXT`,
    `ALTER TABLE composed_manifests ADD COLUMN seq BIGINT`,
    `ALTER TABLE composed_manifests ADD COLUMN created_at BIGINT`,
    `CREATE INDEX composed_by_digest ON composed_manifests (digest)`,
    `CREATE TABLE gc_unreachable (
      digest TEXT PRIMARY KEY,
      size BIGINT NOT NULL,
      first_seen BIGINT NOT NULL
    )`,
    `CREATE TABLE gc_state (
      id INT PRIMARY KEY CHECK (id = 1),
      pass_owner TEXT,
      pass_until BIGINT,
      deleting_owner TEXT,
      deleting_until BIGINT,
      last_report TEXT
    )`,
    `INSERT INTO gc_state (id) VALUES (1)`,
  ],
];

/** Brings the schema up to date; refuses a database migrated by a newer snapclone. */
export async function migrate(sql: Sql<any>): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY.toString()}::bigint)`;
    await tx`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INT PRIMARY KEY,
      applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )`;
    const rows = await tx<{ version: number | null }[]>`SELECT max(version) AS version FROM schema_migrations`;
    const current = rows[0]?.version ?? 0;
    if (current > MIGRATIONS.length) {
      throw new SnapError(
        'invalid',
        `metadata database has schema version ${current}, newer than this snapclone understands (${MIGRATIONS.length})`,
      );
    }
    for (let v = current; v < MIGRATIONS.length; v++) {
      for (const statement of MIGRATIONS[v]!) await tx.unsafe(statement);
      await tx`INSERT INTO schema_migrations (version) VALUES (${v + 1})`;
    }
  });
}
