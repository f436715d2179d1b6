/**
 * `snapclone serve`: the HTTP API over the engines (engines.ts), building in-process
 * (builds.ts) unless --no-builds leaves that to `snapclone worker` processes.
 */
import { createServer, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createHash, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { EnqueueRequest } from '../queue/job-queue.js';
import { openEngines, type Engines } from './engines.js';
import { s3Settings } from '../storage/config.js';
import { startBuilds, type Builds } from './builds.js';
import { latestSnapshot } from './records.js';
import { prepareDataDir, lockDataDir } from './datadir.js';
import { sendJson, setRequestId } from './http-util.js';
import { recordRequest } from './metrics.js';
import { SyncService } from './sync.js';
import { apiHandler } from './api.js';
import { ManifestComposer } from './compose.js';
import { HotArtifactCache } from './hot-cache.js';
import { ArtifactIntegrity } from './integrity.js';
import { ArtifactScrubber } from './scrubber.js';
import { GarbageCollector, PeriodicGc, gcOptionsFromEnv, intEnv } from './gc/collector.js';
import { pollSeconds, UpstreamPoller } from './poller.js';
import { PresignedDownloads, presignSecondsFromEnv } from './downloads.js';
import type { SyncOptions } from './sync.js';
import { SnapError } from '../util/errors.js';
import { log } from '../util/log.js';

export interface ServeOptions {
  host: string;
  port: number;
  dataDir: string;
  adminToken?: string | undefined;
  /** A token that opens GET /metrics only (default $SNAPCLONE_METRICS_TOKEN); the admin token opens it too. */
  metricsToken?: string | undefined;
  buildConcurrency?: number;
  /** Only serve: builds run on workers (needs the shared queue: SNAPCLONE_DATABASE_URL). */
  noBuilds?: boolean;
  buildOptions?: Partial<SyncOptions>;
  /** Memory for hot artifacts, in bytes (default $SNAPCLONE_CACHE_MB or 256 MiB; 0 turns it off). */
  cacheBytes?: number;
  /** Rate of the background scan that hashes every published artifact, MB/s (default $SNAPCLONE_VERIFY_MBPS; 0 or unset: off). */
  verifyMbps?: number;
  /** Seconds between polls of each upstream (default $SNAPCLONE_POLL_SECONDS or 180; 0 turns polling off). */
  pollSeconds?: number;
}

export interface RunningServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** `[::1]` (as in URLs) -> `::1` (what listen() takes). */
export function normalizeHost(host: string): string {
  const m = /^\[(.+)\]$/.exec(host.trim());
  return m ? m[1]! : host.trim();
}

export function isLoopback(host: string): boolean {
  const h = normalizeHost(host).toLowerCase();
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * Start-up order matters, because a server that fails to start must change
 * nothing: the data dir must be a directory, then this process must hold its
 * lock (another server on it, on any port, is refused with code `locked`), then
 * the port must be bound; only then are the store and database opened and the
 * jobs a dead server left unfinished marked failed.
 */
export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const host = normalizeHost(opts.host);
  if (!isLoopback(host) && !opts.adminToken)
    throw new SnapError('usage', `refusing to listen on ${opts.host} without an admin token: set SNAPCLONE_ADMIN_TOKEN (or listen on 127.0.0.1)`);
  if (opts.noBuilds && !process.env.SNAPCLONE_DATABASE_URL?.trim())
    throw new SnapError('usage', '--no-builds needs SNAPCLONE_DATABASE_URL: a shared queue that `snapclone worker` processes take jobs from');
  if (opts.noBuilds && !process.env.SNAPCLONE_S3_BUCKET?.trim())
    throw new SnapError('usage', "--no-builds needs SNAPCLONE_S3_BUCKET: the workers' artifacts must be where this server reads them (a local artifacts dir is each process's own)");
  prepareDataDir(opts.dataDir);
  const lock = lockDataDir(opts.dataDir);
  let handler: RequestListener | null = null;
  const server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    if (handler) return handler(req, res);
    sendJson(res, 503, { error: 'the server is starting', code: 'internal' }); // cannot happen: set before any request is read
  });
  let engines: Engines | undefined;
  let builds: Builds | undefined;
  let integrity: ArtifactIntegrity | undefined;
  let scrubber: ArtifactScrubber | null = null;
  let periodicGc: PeriodicGc | null = null;
  let poller: UpstreamPoller | null = null;
  try {
    const pollEvery = pollSeconds(opts.pollSeconds);
    await listen(server, opts.port, host);
    engines = await openEngines(opts.dataDir);
    const { store, meta } = engines;
    if (engines.postgres && !s3Settings(process.env))
      log.warn('PostgreSQL with local artifacts: only this process can serve what it builds; run one server, or set SNAPCLONE_S3_BUCKET for several servers and workers');
    const presignFor = presignSecondsFromEnv(process.env);
    const presign = store.presign?.bind(store);
    const downloads = presign && presignFor !== null ? new PresignedDownloads({ read: (d) => store.read(d), presign }, presignFor) : null;
    const sync = new SyncService(opts.dataDir, store, meta, opts.buildOptions);
    builds = await startBuilds(engines, sync, { concurrency: opts.noBuilds ? 0 : (opts.buildConcurrency ?? 1) });
    const queue = builds.queue;
    if (pollEvery > 0) {
      poller = new UpstreamPoller(
        {
          meta,
          mirrorDir: (repo: string) => sync.mirrorDir(repo),
          enqueue: (req: EnqueueRequest) => queue.enqueue(req),
          lastSeenRefs: async (repo: string) => (await latestSnapshot(meta, repo))?.data.refs ?? null,
          sharedBuilds: engines.postgres !== null,
        },
        pollEvery,
      );
    }
    const adminTokenHash = opts.adminToken ? createHash('sha256').update(opts.adminToken).digest() : null;
    const metricsToken = opts.metricsToken ?? (process.env.SNAPCLONE_METRICS_TOKEN || undefined);
    const metricsTokenHash = metricsToken ? createHash('sha256').update(metricsToken).digest() : null;
    const cacheMb = process.env.SNAPCLONE_CACHE_MB === undefined ? 256 : Number(process.env.SNAPCLONE_CACHE_MB);
    integrity = new ArtifactIntegrity(store);
    const hot = new HotArtifactCache(store, opts.cacheBytes ?? (Number.isFinite(cacheMb) ? cacheMb : 256) * 2 ** 20, { integrity });
    const composer = new ManifestComposer(store, meta); // one per server: resolves and the scrubber share what it composed
    const gc = new GarbageCollector(store, meta, composer, gcOptionsFromEnv());
    periodicGc = new PeriodicGc(gc, intEnv(process.env, 'SNAPCLONE_GC_INTERVAL_SECONDS', 3600));
    handler = withRequestLog(apiHandler({ store, meta, queue, sync, adminTokenHash, metricsTokenHash, hot, integrity, composer, downloads, sharedBuilds: engines.postgres !== null, gc }));
    const verifyMbps = opts.verifyMbps ?? Number(process.env.SNAPCLONE_VERIFY_MBPS ?? 0);
    if (Number.isFinite(verifyMbps) && verifyMbps > 0) scrubber = new ArtifactScrubber(store, meta, integrity, { bytesPerSecond: verifyMbps * 1e6 }, composer);
  } catch (err) {
    server.closeAllConnections();
    server.close();
    await builds?.stop();
    await engines?.close();
    lock.release();
    throw err;
  }
  const addr = server.address() as AddressInfo;
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${shown}:${addr.port}`;
  log.info(`snapclone serving on ${url} (data in ${opts.dataDir}, pid ${process.pid}; ${engines!.describe}${opts.noBuilds ? '; builds on workers only' : ''})`);
  scrubber?.start();
  poller?.start();
  periodicGc?.start();
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
      await poller?.stop();
      await periodicGc?.stop();
      await builds!.stop(); // rechecks first (nothing new is queued), then the queue
      await integrity!.idle();
      await engines!.close();
      lock.release();
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new SnapError('usage', e.code === 'EADDRINUSE' ? `port ${port} on ${host} is already in use` : `cannot listen on ${host} port ${port}: ${e.message}`)),
    );
    server.listen(port, host, () => resolve());
  });
}

/**
 * One info line per request once its response is done: method, path (secrets in the query
 * redacted by the logger), status, body bytes, milliseconds, and "aborted" when the connection
 * closed before the response was complete; the same as fields, with the request id. The id is
 * the client's `x-request-id` when that is a short safe token (a proxy's id then threads
 * through), else a fresh one; it is echoed in the response. Headers are never logged (they
 * carry the admin token). The line also feeds the request and byte counters of /metrics.
 */
export function withRequestLog(handler: RequestListener): RequestListener {
  return (req, res) => {
    const t0 = performance.now();
    const given = req.headers['x-request-id'];
    const reqId = typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID();
    setRequestId(req, reqId);
    res.setHeader('x-request-id', reqId);
    let bytes = 0;
    const count = (chunk: unknown, encoding?: unknown) => {
      if (typeof chunk === 'string') bytes += Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
      else if (chunk instanceof Uint8Array) bytes += chunk.length;
    };
    const write = res.write;
    const end = res.end;
    res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
      count(chunk, rest[0]);
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof res.write;
    res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
      if (typeof chunk !== 'function') count(chunk, rest[0]);
      return (end as (...a: unknown[]) => ServerResponse).call(this, chunk, ...rest);
    } as typeof res.end;
    res.once('close', () => {
      const status = res.headersSent ? res.statusCode : null;
      const body = req.method === 'HEAD' ? 0 : bytes;
      const ms = Math.round(performance.now() - t0);
      const aborted = !res.writableFinished;
      const method = req.method ?? '?';
      const url = req.url ?? '?';
      recordRequest(method, url, status, body);
      log.info(`${method} ${url} ${status ?? '-'} ${body} B ${ms} ms${aborted ? ' aborted' : ''}`, { reqId, method, url, status, bytes: body, ms, aborted });
    });
    return handler(req, res);
  };
}

/** A request id we accept from a client: short, and nothing a log reader could trip on. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
