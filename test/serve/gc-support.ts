/**
 * Helpers of the garbage collection tests: a server on a backend (local disk or S3) with GC
 * settings from the environment, what its store holds, and the artifacts a manifest names.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { manifestArtifacts, parseManifest } from '../../src/clonepack/manifest.js';
import { startServer, type RunningServer, type ServeOptions } from '../../src/serve/server.js';
import { LocalArtifactStore } from '../../src/storage/local/local-store.js';
import { S3ArtifactStore } from '../../src/storage/s3/s3-store.js';
import type { ArtifactStore } from '../../src/storage/artifact-store.js';
import { sha256Hex } from '../../src/util/hash.js';
import type { Seaweed } from '../support/seaweed.js';
import { call, waitJob } from './helpers.js';

export interface GcBackend {
  name: string;
  /** null: not available here. */
  weed?: () => Seaweed | null;
}

export interface GcServer {
  s: RunningServer;
  dataDir: string;
  /** A store handle on the same artifacts (listing what is stored). */
  store: ArtifactStore;
  close(): Promise<void>;
}

/** Start a server with these env settings (GC reads them at start), restored on close. */
export async function startGcServer(backend: GcBackend, dataDir: string, env: Record<string, string>, opts: Partial<ServeOptions> = {}): Promise<GcServer> {
  const all: Record<string, string> = { SNAPCLONE_GC_INTERVAL_SECONDS: '0', ...env };
  let store: ArtifactStore;
  const weed = backend.weed?.();
  if (weed) {
    const bucket = await weed.createBucket();
    Object.assign(all, weed.env(), { SNAPCLONE_S3_BUCKET: bucket, SNAPCLONE_S3_ENDPOINT: weed.endpoint, SNAPCLONE_S3_PREFIX: 'gc/' });
    store = new S3ArtifactStore({ bucket, prefix: 'gc/', endpoint: weed.endpoint, region: weed.region, credentials: weed.credentials });
  } else {
    store = new LocalArtifactStore(join(dataDir, 'artifacts'));
  }
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(all)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  process.env.SNAPCLONE_LOG ??= 'warn';
  const restore = () => {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  };
  let s: RunningServer;
  try {
    s = await startServer({ host: '127.0.0.1', port: 0, dataDir, cacheBytes: 0, ...opts });
  } catch (err) {
    restore();
    throw err;
  }
  return {
    s,
    dataDir,
    store,
    async close() {
      await s.close();
      store.close?.();
      restore();
    },
  };
}

export async function stored(store: ArtifactStore): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const a of store.list()) out.set(a.digest, a.size);
  return out;
}

export function bytesOf(m: Map<string, number>): number {
  let n = 0;
  for (const v of m.values()) n += v;
  return n;
}

export async function syncAndWait(base: string, name: string, body: Record<string, unknown> = {}): Promise<any> {
  const r = await call(base, 'POST', `/v1/repos/${encodeURIComponent(name)}/sync`, body);
  assert.equal(r.status, 202, r.text);
  const job = await waitJob(base, r.json.job.id, 120_000);
  assert.equal(job.state, 'succeeded', job.error);
  return job;
}

export async function resolveManifest(base: string, name: string, ref: string, mode: string): Promise<string> {
  const r = await call(base, 'GET', `/v1/repos/${encodeURIComponent(name)}/resolve?ref=${encodeURIComponent(ref)}&mode=${mode}`);
  assert.equal(r.status, 200, `resolve ${ref} ${mode}: ${r.text}`);
  return r.json.manifest.digest as string;
}

/** Download an artifact through the server and check its bytes hash to its digest; the status if not 200. */
export async function fetchVerified(base: string, digest: string): Promise<Buffer | number> {
  const res = await fetch(`${base}/v1/artifacts/${digest}`);
  if (res.status !== 200) {
    await res.arrayBuffer();
    return res.status;
  }
  const bytes = Buffer.from(await res.arrayBuffer());
  assert.equal(sha256Hex(bytes), digest, `artifact ${digest} served wrong bytes`);
  return bytes;
}

/** A manifest and every artifact it names, each downloaded and verified: what a clone of it needs. Returns the missing ones. */
export async function missingOfManifest(base: string, manifest: string): Promise<string[]> {
  const m = await fetchVerified(base, manifest);
  if (typeof m === 'number') return [manifest];
  const missing: string[] = [];
  for (const a of manifestArtifacts(parseManifest(m))) if (typeof (await fetchVerified(base, a.digest)) === 'number') missing.push(a.digest);
  return missing;
}

export async function gcPass(base: string, dryRun = false): Promise<any> {
  const r = await call(base, 'POST', '/v1/gc', { dryRun });
  assert.equal(r.status, 200, r.text);
  return r.json;
}
