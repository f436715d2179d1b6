/**
 * `snapclone serve`: one process with the HTTP API, the artifact store, the
 * metadata database and an in-process build queue, all under one data dir.
 */
import { createServer, type Server } from 'node:http';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { LocalArtifactStore } from '../storage/local-store.js';
import { SqliteMetadataStore } from '../metadata/sqlite-store.js';
import { LocalJobQueue } from '../queue/local-queue.js';
import { SyncService } from './sync.js';
import { apiHandler } from './api.js';
import { HotArtifactCache } from './hot-cache.js';
import { ArtifactIntegrity } from './integrity.js';
import { ArtifactScrubber } from './scrubber.js';
import type { BuildOptions } from '../build/builder.js';
import { SnapError } from '../util/errors.js';
import { log } from '../util/log.js';

export interface ServeOptions {
  host: string;
  port: number;
  dataDir: string;
  adminToken?: string | undefined;
  buildConcurrency?: number;
  buildOptions?: Partial<BuildOptions>;
  /** Memory for hot artifacts, in bytes (default $SNAPCLONE_CACHE_MB or 256 MiB; 0 turns it off). */
  cacheBytes?: number;
  /** Rate of the background scan that hashes every published artifact, MB/s (default $SNAPCLONE_VERIFY_MBPS; 0 or unset: off). */
  verifyMbps?: number;
}

export interface RunningServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  if (!isLoopback(opts.host) && !opts.adminToken)
    throw new SnapError('usage', `refusing to listen on ${opts.host} without an admin token: set SNAPCLONE_ADMIN_TOKEN (or listen on 127.0.0.1)`);
  mkdirSync(opts.dataDir, { recursive: true });
  const store = new LocalArtifactStore(join(opts.dataDir, 'artifacts'));
  const meta = new SqliteMetadataStore(join(opts.dataDir, 'snapclone.db'));
  const sync = new SyncService(opts.dataDir, store, meta, opts.buildOptions);
  const queue = new LocalJobQueue(
    meta,
    async (job, report) => {
      log.info(`job ${job.id}: sync ${job.repo}${job.ref ? ` ${job.ref}` : ''}`);
      try {
        return await sync.run(job, report);
      } catch (err) {
        log.error(`job ${job.id} failed: ${(err as Error).message}`);
        throw err;
      }
    },
    { concurrency: opts.buildConcurrency ?? 1 },
  );
  const adminTokenHash = opts.adminToken ? createHash('sha256').update(opts.adminToken).digest() : null;
  const cacheMb = process.env.SNAPCLONE_CACHE_MB === undefined ? 256 : Number(process.env.SNAPCLONE_CACHE_MB);
  const integrity = new ArtifactIntegrity(store);
  const hot = new HotArtifactCache(store, opts.cacheBytes ?? (Number.isFinite(cacheMb) ? cacheMb : 256) * 2 ** 20, { integrity });
  const server = createServer({ keepAliveTimeout: 30_000 }, apiHandler({ store, meta, queue, sync, adminTokenHash, hot, integrity }));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new SnapError('usage', e.code === 'EADDRINUSE' ? `port ${opts.port} on ${opts.host} is already in use` : `cannot listen: ${e.message}`)),
    );
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${host}:${addr.port}`;
  log.info(`snapclone serving on ${url} (data in ${opts.dataDir})`);
  const verifyMbps = opts.verifyMbps ?? Number(process.env.SNAPCLONE_VERIFY_MBPS ?? 0);
  const scrubber = Number.isFinite(verifyMbps) && verifyMbps > 0 ? new ArtifactScrubber(store, meta, integrity, { bytesPerSecond: verifyMbps * 1e6 }) : null;
  scrubber?.start();
  let closed = false;
  return {
    url,
    server,
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await scrubber?.stop();
      await queue.close();
      await integrity.idle();
      meta.close();
    },
  };
}
