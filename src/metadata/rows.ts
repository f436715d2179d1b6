/**
 * The rows both SQL stores keep (same tables and columns in SQLite and PostgreSQL) and their
 * records. JSON columns are text, so they round-trip exactly.
 */
import type { JobRecord, RefMode, RefRecord, RepoRecord, SnapshotRecord } from './metadata-store.js';

export interface RepoRow {
  name: string;
  url: string;
  default_branch: string | null;
  created_at: number;
  /** Access control: 'public' | 'private' (a migration made every earlier row 'public'). */
  visibility: string;
}

export interface RefRow {
  repo: string;
  ref: string;
  mode: string;
  commit_oid: string | null;
  seq: number;
  built_at: number;
  view: string;
}

export interface SnapshotRow {
  repo: string;
  seq: number;
  data: string;
  created_at: number;
}

export interface JobRow {
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
  /** PostgreSQL's claims; SQLite has no column (the local queue runs a job once: claimed once started). */
  attempts?: number;
}

export function repoFromRow(r: RepoRow): RepoRecord {
  return { name: r.name, url: r.url, defaultBranch: r.default_branch, createdAt: r.created_at, visibility: r.visibility === 'private' ? 'private' : 'public' };
}

export function refFromRow(r: RefRow): RefRecord {
  return {
    repo: r.repo,
    ref: r.ref,
    mode: r.mode as RefMode,
    commit: r.commit_oid,
    seq: r.seq,
    builtAt: r.built_at,
    view: JSON.parse(r.view),
  };
}

export function snapshotFromRow(r: SnapshotRow): SnapshotRecord {
  return { repo: r.repo, seq: r.seq, data: JSON.parse(r.data), createdAt: r.created_at };
}

/** A jobs row (as `SELECT *` or `RETURNING *` gives it) as a JobRecord. */
export function jobFromRow(r: JobRow): JobRecord {
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
    attempts: r.attempts ?? (r.started_at === null ? 0 : 1),
  };
}
