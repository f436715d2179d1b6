/**
 * Which artifact store a process uses, from its environment: SNAPCLONE_S3_BUCKET
 * selects an S3-compatible bucket (with a disk cache in front), else local disk.
 * Credentials come the standard AWS way (the SDK's chain), never from here, and
 * nothing here logs them.
 */
import { join } from 'node:path';
import type { ArtifactStore } from './artifact-store.js';
import { DiskCachedStore } from './cache/disk-cache.js';
import { LocalArtifactStore } from './local/local-store.js';
import { S3ArtifactStore } from './s3/s3-store.js';
import { invalid } from '../util/errors.js';

const MiB = 1024 * 1024;

/** SNAPCLONE_S3_* as store options; null when no bucket is set (local disk). Throws a one-line error on bad values. */
export function s3Settings(env: NodeJS.ProcessEnv): {
  bucket: string;
  endpoint?: string;
  /** Unset: the SDK's chain (AWS_REGION, the profile's region), else us-east-1. */
  region?: string;
  prefix: string;
  cacheMb: number;
  conditionalWrites: boolean;
} | null {
  const bucket = env.SNAPCLONE_S3_BUCKET?.trim();
  if (!bucket) return null;
  const endpoint = env.SNAPCLONE_S3_ENDPOINT?.trim() || undefined;
  if (endpoint && !/^https?:\/\/[^/\s]+/.test(endpoint)) throw invalid(`SNAPCLONE_S3_ENDPOINT must be an http(s) URL, not ${JSON.stringify(endpoint.slice(0, 80))}`);
  if (endpoint && /^https?:\/\/[^/]*@/.test(endpoint)) throw invalid('SNAPCLONE_S3_ENDPOINT must not carry credentials: use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile');
  const rawPrefix = env.SNAPCLONE_S3_PREFIX?.trim() ?? '';
  // A folder of keys: 'snap' means 'snap/' (else keys would read 'snapsha256/...').
  const prefix = rawPrefix && !rawPrefix.endsWith('/') ? `${rawPrefix}/` : rawPrefix;
  if (prefix.startsWith('/') || /(^|\/)\.\.?(\/|$)/.test(prefix)) throw invalid(`SNAPCLONE_S3_PREFIX must be a relative key prefix such as "snapclone/", not ${JSON.stringify(rawPrefix.slice(0, 80))}`);
  const cacheRaw = env.SNAPCLONE_S3_CACHE_MB?.trim() || '2048';
  const cacheMb = Number(cacheRaw);
  if (!/^\d+$/.test(cacheRaw) || !Number.isSafeInteger(cacheMb)) throw invalid(`SNAPCLONE_S3_CACHE_MB must be a whole number of MiB (0 turns the disk cache off), not ${JSON.stringify(cacheRaw)}`);
  const cw = env.SNAPCLONE_S3_CONDITIONAL_WRITES?.trim();
  if (cw !== undefined && cw !== '' && cw !== '0' && cw !== '1') throw invalid(`SNAPCLONE_S3_CONDITIONAL_WRITES must be 1 or 0, not ${JSON.stringify(cw.slice(0, 20))}`);
  const region = env.SNAPCLONE_S3_REGION?.trim();
  return {
    bucket,
    ...(endpoint ? { endpoint } : {}),
    ...(region ? { region } : {}),
    prefix,
    cacheMb,
    conditionalWrites: cw !== '0',
  };
}

/** The artifact store for this environment: S3 (cached under <dataDir>/s3-cache) or <dataDir>/artifacts. */
export function openArtifactStore(env: NodeJS.ProcessEnv, dataDir: string): ArtifactStore {
  const s3 = s3Settings(env);
  if (!s3) return new LocalArtifactStore(join(dataDir, 'artifacts'));
  const remote = new S3ArtifactStore({
    bucket: s3.bucket,
    prefix: s3.prefix,
    ...(s3.region ? { region: s3.region } : {}),
    conditionalWrites: s3.conditionalWrites,
    ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
  });
  if (s3.cacheMb === 0) return remote;
  return new DiskCachedStore(remote, { dir: join(dataDir, 's3-cache'), maxBytes: s3.cacheMb * MiB });
}
