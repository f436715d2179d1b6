/**
 * Which MetadataStore a process uses: SNAPCLONE_DATABASE_URL=postgres://… selects PostgreSQL
 * (shared by any number of servers and workers); unset, the embedded SQLite store the caller opens.
 */
import type { MetadataStore } from './metadata-store.js';
import { PostgresMetadataStore } from './postgres/pg-store.js';
import { invalid } from '../util/errors.js';
import { redactUrl } from '../util/redact.js';

export async function openMetadataStore(
  env: NodeJS.ProcessEnv,
  openLocal: () => MetadataStore | Promise<MetadataStore>,
): Promise<MetadataStore> {
  const url = env.SNAPCLONE_DATABASE_URL?.trim();
  if (!url) return openLocal();
  if (!/^postgres(ql)?:\/\//i.test(url)) {
    throw invalid(`SNAPCLONE_DATABASE_URL must be a postgres:// or postgresql:// URL, got ${redactUrl(url)}`);
  }
  return PostgresMetadataStore.open(url);
}
