/**
 * `snapclone worker`: a build process without an HTTP API. It claims sync jobs from the shared
 * queue (PostgreSQL), builds them from its own mirrors into the shared artifact store, and
 * publishes their records. Its data dir (mirrors, scratch space, the bucket's disk cache) is
 * disposable: a fresh worker bootstraps a mirror from the store's history levels. A worker killed
 * at any instant loses no job (its lease expires and another worker takes the job over) and
 * publishes nothing partial (records are written only after the artifacts they name).
 */
import { createServer, type Server } from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { prepareDataDir, lockDataDir } from './datadir.js';
import { requireMetricsAccess } from './api.js';
import { sendError, sendJson } from './http-util.js';
import { sendMetrics } from './metrics.js';
import { ReadinessCheck, sendReadiness } from './readiness.js';
import { isLoopback, normalizeHost } from './server.js';
import { openEngines, type Engines } from './engines.js';
import { startBuilds, type Builds } from './builds.js';
import { SyncService, type SyncOptions } from './sync.js';
import { SnapError } from '../util/errors.js';
import { log } from '../util/log.js';

const NEEDS_QUEUE = new SnapError('usage', 'snapclone worker needs the shared queue: set SNAPCLONE_DATABASE_URL=postgres://…');
const NEEDS_BUCKET = new SnapError('usage', 'snapclone worker needs the shared artifact store: set SNAPCLONE_S3_BUCKET (each process\'s local artifacts dir is its own)');

export interface WorkerOptions {
  dataDir: string;
  /** Jobs run at once (default 1). */
  concurrency?: number;
  /** Lease of a claimed job, ms (default $SNAPCLONE_LEASE_SECONDS or 30 s). */
  leaseMs?: number;
  buildOptions?: Partial<SyncOptions>;
  /** Serve GET /healthz, /readyz and /metrics (this worker's builds) on host:port; none by default. */
  listen?: { host: string; port: number };
  adminToken?: string | undefined;
  metricsToken?: string | undefined;
}

export interface RunningWorker {
  /** http://host:port of the operational endpoints, when --listen was given. */
  url: string | null;
  /** Claim nothing more, finish the running jobs, and release everything. */
  close(): Promise<void>;
}

export async function startWorker(opts: WorkerOptions): Promise<RunningWorker> {
  // Both before the data dir is touched: a worker's artifacts must land where servers read them.
  if (!process.env.SNAPCLONE_DATABASE_URL?.trim()) throw NEEDS_QUEUE;
  if (!process.env.SNAPCLONE_S3_BUCKET?.trim()) throw NEEDS_BUCKET;
  prepareDataDir(opts.dataDir);
  const lock = lockDataDir(opts.dataDir);
  let engines: Engines | undefined;
  let builds: Builds | undefined;
  let ops: Server | null = null;
  try {
    engines = await openEngines(opts.dataDir);
    if (!engines.postgres) throw NEEDS_QUEUE;
    const sync = new SyncService(opts.dataDir, engines.store, engines.meta, opts.buildOptions);
    builds = await startBuilds(engines, sync, { concurrency: opts.concurrency ?? 1, ...(opts.leaseMs ? { leaseMs: opts.leaseMs } : {}) });
    if (opts.listen) ops = await listenOps(opts, engines, builds);
  } catch (err) {
    ops?.close();
    await builds?.stop();
    await engines?.close();
    lock.release();
    throw err;
  }
  const shownOps = ops ? `; metrics on ${(ops.address() as AddressInfo).port}` : '';
  log.info(`snapclone worker running (data in ${opts.dataDir}, pid ${process.pid}; ${engines.describe}; ${opts.concurrency ?? 1} job(s) at once${shownOps})`);
  let closed: Promise<void> | null = null;
  const addr = ops?.address() as AddressInfo | undefined;
  return {
    url: addr ? `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` : null,
    close() {
      closed ??= (async () => {
        if (ops) await new Promise<void>((resolve) => (ops!.close(() => resolve()), ops!.closeAllConnections()));
        await builds!.stop();
        await engines!.close();
        lock.release();
      })();
      return closed;
    },
  };
}

/**
 * A worker's operational endpoints: liveness, readiness of its engines, and its metrics (builds
 * by outcome and duration happen here, not in the servers). /metrics follows the server's rule:
 * open only when neither the admin nor the metrics token is set, and a token is required to
 * listen beyond loopback.
 */
async function listenOps(opts: WorkerOptions, engines: Engines, builds: Builds): Promise<Server> {
  const { host, port } = opts.listen!;
  const hash = (t: string | undefined) => (t ? createHash('sha256').update(t).digest() : null);
  const tokens = { adminTokenHash: hash(opts.adminToken), metricsTokenHash: hash(opts.metricsToken) };
  if (!isLoopback(host) && !tokens.adminTokenHash && !tokens.metricsTokenHash)
    throw new SnapError('usage', `refusing to serve worker metrics on ${host} without a token: set SNAPCLONE_METRICS_TOKEN (or listen on 127.0.0.1)`);
  const readiness = new ReadinessCheck(engines);
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const run = async () => {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new SnapError('not-found', `no route ${req.method} ${path}`);
      if (path === '/healthz') return sendJson(res, 200, { status: 'ok', role: 'worker' });
      if (path === '/readyz') return sendReadiness(res, readiness);
      if (path === '/metrics') {
        requireMetricsAccess(tokens, req);
        return sendMetrics(res, builds.queue, req.method === 'HEAD');
      }
      throw new SnapError('not-found', `no route ${req.method} ${path}`);
    };
    run().catch((err: unknown) => sendError(res, err));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new SnapError('usage', e.code === 'EADDRINUSE' ? `port ${port} on ${host} is already in use` : `cannot listen on ${host} port ${port}: ${e.message}`)));
    server.listen(port, normalizeHost(host), () => resolve());
  });
  return server;
}
