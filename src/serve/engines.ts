/**
 * The engines a process runs on, from its environment: the embedded defaults (local disk,
 * SQLite in the data dir) or the shared ones that let several servers and workers cooperate:
 * an S3-compatible bucket (SNAPCLONE_S3_BUCKET, with a disk cache in front) and PostgreSQL
 * (SNAPCLONE_DATABASE_URL, which also carries the build queue). Nothing here logs a credential.
 */
import { join } from 'node:path';
import type { ArtifactInfo, ArtifactStore } from '../storage/artifact-store.js';
import { openArtifactStore, s3Settings } from '../storage/config.js';
import { LocalArtifactStore } from '../storage/local/local-store.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { openMetadataStore } from '../metadata/config.js';
import { SqliteMetadataStore } from '../metadata/sqlite/sqlite-store.js';
import { PostgresMetadataStore } from '../metadata/postgres/pg-store.js';
import { SnapError } from '../util/errors.js';
import { log } from '../util/log.js';
import { redactUrl } from '../util/redact.js';

export interface Engines {
  store: ArtifactStore;
  meta: MetadataStore;
  /** Set when the metadata (and so the queue) is PostgreSQL: other processes share it. */
  postgres: PostgresMetadataStore | null;
  /** For the start-up line: which engines, without credentials. */
  describe: string;
  close(): Promise<void>;
}

export async function openEngines(dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<Engines> {
  const s3 = s3Settings(env);
  // S3 logs its own writes; the local store gets a debug line per write here.
  const store: ArtifactStore = s3 ? openArtifactStore(env, dataDir) : new LoggedArtifactStore(join(dataDir, 'artifacts'));
  const meta = await openMetadataStore(env, () => openSqlite(join(dataDir, 'snapclone.db')));
  const postgres = meta instanceof PostgresMetadataStore ? meta : null;
  const where = s3 ? `S3 bucket ${s3.bucket}${s3.endpoint ? ` at ${redactUrl(s3.endpoint)}` : ''}` : 'local artifacts';
  const db = postgres ? `PostgreSQL ${redactUrl(env.SNAPCLONE_DATABASE_URL ?? '')}` : 'SQLite';
  return {
    store,
    meta,
    postgres,
    describe: `${where}, ${db}`,
    close: async () => {
      try {
        await meta.close();
      } finally {
        store.close?.(); // the S3 client's keep-alive sockets
      }
    },
  };
}

/** Open the SQLite database; a damaged file is one clear line (exit 7) saying what to do, not a stack trace. */
function openSqlite(path: string): SqliteMetadataStore {
  try {
    return new SqliteMetadataStore(path);
  } catch (err) {
    if (err instanceof SnapError) throw err;
    const code = (err as { code?: string }).code ?? '';
    const why = (err as Error).message;
    if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) {
      throw new SnapError(
        'invalid',
        `database ${path} is damaged (${why}): restore it from a backup, or move it aside to start with an empty one (repositories must then be added again)`,
        { cause: err },
      );
    }
    throw new SnapError('io', `cannot open database ${path}: ${why}`, { cause: err });
  }
}

/** The local artifact store, with a debug line per write. */
class LoggedArtifactStore extends LocalArtifactStore {
  override async putFile(path: string, claimed?: string): Promise<ArtifactInfo> {
    const t0 = Date.now();
    const info = await super.putFile(path, claimed);
    log.debug(`store: put ${info.digest} (${info.size} bytes, from ${path}) in ${Date.now() - t0} ms`);
    return info;
  }

  override async putBytes(bytes: Uint8Array): Promise<ArtifactInfo> {
    const t0 = Date.now();
    const info = await super.putBytes(bytes);
    log.debug(`store: put ${info.digest} (${info.size} bytes) in ${Date.now() - t0} ms`);
    return info;
  }
}
