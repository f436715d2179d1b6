/**
 * Prometheus metrics (GET /metrics, text exposition format), on prom-client with a registry of
 * our own (never prom-client's global one, which a library in the same process could fill).
 * One set per process: a process is one server or one worker, and whatever runs there records
 * into it (builds: whoever runs jobs calls recordBuild; errors: sendError and sendJson; bytes:
 * the request log). Queue gauges are read from the queue at scrape time, so they are as fresh
 * as the database. No label carries a repository name, URL or anything a client chose freely
 * (cardinality, and names are not everyone's business); see docs/DEPLOY-observability.md.
 */
import type { ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { QueueStats } from '../queue/job-queue.js';
import { log } from '../util/log.js';

export class SnapcloneMetrics {
  readonly registry = new Registry();
  readonly queueJobs = new Gauge({
    name: 'snapclone_queue_jobs',
    help: 'Build jobs by state (queued, running, dead), as the queue reports them at scrape time',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  readonly oldestQueued = new Gauge({
    name: 'snapclone_queue_oldest_job_age_seconds',
    help: 'Age of the oldest queued (not yet started) job, 0 when none waits',
    registers: [this.registry],
  });
  readonly builds = new Counter({
    name: 'snapclone_builds_total',
    help: 'Builds run by this process, by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly buildSeconds = new Histogram({
    name: 'snapclone_build_duration_seconds',
    help: 'Duration of builds run by this process, by outcome',
    labelNames: ['outcome'] as const,
    buckets: [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
    registers: [this.registry],
  });
  readonly resolveSeconds = new Histogram({
    name: 'snapclone_resolve_duration_seconds',
    help: 'Latency of GET /v1/repos/<name>/resolve, by outcome (served, building, error)',
    labelNames: ['outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly clones = new Counter({
    name: 'snapclone_clones_total',
    help: 'Clones handed a clonepack (resolve answered 200), by clone mode (full, files, shallow)',
    labelNames: ['mode'] as const,
    registers: [this.registry],
  });
  readonly servedBytes = new Counter({
    name: 'snapclone_served_bytes_total',
    help: 'Response body bytes written, by route (artifacts: clonepack downloads through this server; api: the rest)',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  readonly requests = new Counter({
    name: 'snapclone_http_requests_total',
    help: 'HTTP requests answered, by method and status code',
    labelNames: ['method', 'status'] as const,
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'snapclone_errors_total',
    help: 'Error answers by error code (the "code" of the JSON error body; "aborted" for responses cut after their headers)',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry }); // process_* and nodejs_*: CPU, memory, event loop lag
  }

  /** The exposition text, with the queue gauges read from `queue` first (left out if it cannot answer). */
  async render(queue?: { stats(): Promise<QueueStats> }): Promise<string> {
    if (queue) {
      try {
        const s = await queue.stats();
        this.queueJobs.set({ state: 'queued' }, s.queued);
        this.queueJobs.set({ state: 'running' }, s.running);
        this.queueJobs.set({ state: 'dead' }, s.dead);
        this.oldestQueued.set(s.oldestQueuedAt === null ? 0 : Math.max(0, (Date.now() - s.oldestQueuedAt) / 1000));
      } catch (err) {
        // A stale depth would look healthy: drop the series instead (readyz says what is down).
        this.queueJobs.reset();
        this.oldestQueued.reset();
        log.warn(`metrics: cannot read queue stats: ${(err as Error).message}`);
      }
    }
    return this.registry.metrics();
  }
}

let current: SnapcloneMetrics | null = null;

/** This process's metrics, created on first use. */
export function processMetrics(): SnapcloneMetrics {
  current ??= new SnapcloneMetrics();
  return current;
}

/** A finished build: outcome 'succeeded' or 'failed' (or another short word), and how long it ran. */
export function recordBuild(outcome: string, seconds: number): void {
  const m = processMetrics();
  m.builds.inc({ outcome });
  m.buildSeconds.observe({ outcome }, seconds);
}

export function recordResolve(outcome: 'served' | 'building' | 'error', seconds: number): void {
  processMetrics().resolveSeconds.observe({ outcome }, seconds);
}

export function recordClone(mode: string): void {
  processMetrics().clones.inc({ mode });
}

export function recordError(code: string): void {
  processMetrics().errors.inc({ code });
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** One answered request (from the request log): its method, status and body bytes. */
export function recordRequest(method: string, path: string, status: number | null, bytes: number): void {
  const m = processMetrics();
  m.requests.inc({ method: METHODS.has(method) ? method : 'other', status: status === null ? 'none' : String(status) });
  if (bytes > 0) m.servedBytes.inc({ route: path.startsWith('/v1/artifacts/') ? 'artifacts' : 'api' }, bytes);
}

/** GET /metrics. */
export async function sendMetrics(res: ServerResponse, queue: { stats(): Promise<QueueStats> }, head = false): Promise<void> {
  const m = processMetrics();
  const text = await m.render(queue);
  res.writeHead(200, { 'content-type': m.registry.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(head ? undefined : text);
}
