/**
 * The HTTP API (documented in docs/API.md). Read endpoints are open; endpoints
 * that change state (add, sync) need the admin token when one is configured,
 * and one must be configured when the server listens beyond loopback.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { existsSync } from 'node:fs';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ArtifactStore } from '../storage/artifact-store.js';
import type { JobRecord, MetadataStore, RefRecord } from '../metadata/metadata-store.js';
import type { JobQueue } from '../queue/job-queue.js';
import { lsRemote, validateUpstreamUrl } from '../build/upstream.js';
import { snapshotRefs } from '../build/mirror.js';
import { assertRepoName, nameFromUrl } from '../clonepack/names.js';
import { isValidRefName } from '../clonepack/refs.js';
import { SnapError } from '../util/errors.js';
import { readJson, sendError, sendJson } from './http-util.js';
import { reportArtifact, serveArtifact } from './artifacts.js';
import type { HotArtifactCache } from './hot-cache.js';
import type { ArtifactIntegrity } from './integrity.js';
import { damagedArtifacts } from './manifest-health.js';
import type { SyncService } from './sync.js';

export interface ApiContext {
  store: ArtifactStore;
  meta: MetadataStore;
  queue: JobQueue;
  sync: SyncService;
  /** SHA-256 of the admin token, or null when none is required. */
  adminTokenHash: Buffer | null;
  hot?: HotArtifactCache;
  integrity: ArtifactIntegrity;
}

export function apiHandler(ctx: ApiContext) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      await route(ctx, req, res);
    } catch (err) {
      sendError(res, err);
    }
  };
}

async function route(ctx: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x');
  const parts = url.pathname.split('/').slice(1).map(decodeSegment);
  const method = req.method ?? 'GET';
  if (url.pathname === '/healthz') {
    const quarantined = (await ctx.store.listQuarantined()).length; // damaged artifacts degrade, not fail: the rest still serves
    return sendJson(res, 200, { status: quarantined ? 'degraded' : 'ok', quarantined });
  }
  if (parts[0] !== 'v1') return sendJson(res, 404, { error: 'not found', code: 'not-found' });

  if (parts[1] === 'artifacts' && parts.length === 3 && (method === 'GET' || method === 'HEAD')) {
    return serveArtifact(ctx, parts[2]!, req, res);
  }
  if (parts[1] === 'artifacts' && parts.length === 4 && parts[3] === 'report' && method === 'POST') return reportArtifact(ctx, parts[2]!, await readJson(req), res);
  if (parts[1] === 'jobs' && parts.length === 3 && method === 'GET') {
    const job = ctx.meta.getJob(Number(parts[2]));
    if (!job) return sendJson(res, 404, { error: `no job ${parts[2]}`, code: 'not-found' });
    return sendJson(res, 200, jobView(job));
  }
  if (parts[1] === 'repos' && parts.length === 2) {
    if (method === 'GET') return sendJson(res, 200, { repos: ctx.meta.listRepos().map((r) => ({ name: r.name, url: r.url })) });
    if (method === 'POST') {
      requireAdmin(ctx, req);
      return addRepo(ctx, await readJson(req), res);
    }
  }
  if (parts[1] === 'repos' && parts.length >= 3) {
    const name = parts[2]!;
    const action = parts[3];
    if (parts.length === 3 && method === 'GET')
      return sendJson(res, 200, { ...status(ctx, name), damaged: await damagedArtifacts(ctx.store, ctx.meta.listRefs(name).map((r) => r.manifest)) });
    if (action === 'resolve' && parts.length === 4 && method === 'GET') return resolve(ctx, name, url.searchParams.get('ref') ?? '', res);
    if (action === 'sync' && parts.length === 4 && method === 'POST') {
      requireAdmin(ctx, req);
      return syncRepo(ctx, name, await readJson(req), res);
    }
  }
  sendJson(res, 404, { error: `no route ${method} ${url.pathname}`, code: 'not-found' });
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new SnapError('invalid', 'malformed URL encoding');
  }
}

function requireAdmin(ctx: ApiContext, req: IncomingMessage): void {
  if (!ctx.adminTokenHash) return;
  const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
  const given = createHash('sha256').update(m?.[1] ?? '').digest();
  if (!m || !timingSafeEqual(given, ctx.adminTokenHash)) throw new SnapError('unauthorized', 'this endpoint needs the admin token (Authorization: Bearer ...)');
}

function jobView(job: JobRecord) {
  return { id: job.id, repo: job.repo, ref: job.ref, state: job.state, phase: job.phase, error: job.error, commit: job.commit, createdAt: job.createdAt, startedAt: job.startedAt, finishedAt: job.finishedAt };
}

function refView(r: RefRecord) {
  return { ref: r.ref, commit: r.commit, manifest: { digest: r.manifest, size: r.manifestSize }, builtAt: r.builtAt, sizes: r.sizes };
}

function getRepoOr404(ctx: ApiContext, name: string) {
  assertRepoName(name);
  const repo = ctx.meta.getRepo(name);
  if (!repo) throw new SnapError('not-found', `unknown repository ${name} (register it with: snapclone add <url> --name ${name})`);
  return repo;
}

async function addRepo(ctx: ApiContext, body: Record<string, unknown>, res: ServerResponse): Promise<void> {
  const url = body.url;
  if (typeof url !== 'string') throw new SnapError('invalid', 'body needs "url"');
  validateUpstreamUrl(url);
  const name = typeof body.name === 'string' && body.name ? body.name : nameFromUrl(url);
  assertRepoName(name);
  const existing = ctx.meta.getRepo(name);
  if (existing) {
    if (existing.url !== url) throw new SnapError('conflict', `${name} is already registered for another upstream`);
    const jobs = ctx.meta.listJobs(name, 1);
    const built = ctx.meta.listRefs(name).length > 0;
    // Idempotent: nothing new unless the first build never succeeded.
    const job = !built && (jobs.length === 0 || jobs[0]!.state === 'failed') ? ctx.queue.enqueue({ repo: name, ref: null }) : jobs[0];
    return sendJson(res, 200, { name, url, created: false, job: job ? jobView(job) : null });
  }
  await lsRemote(url); // unreachable or not a git repository: fail before registering anything
  if (!ctx.meta.addRepo({ name, url, defaultBranch: null, createdAt: Date.now() })) {
    // Registered meanwhile by a concurrent add: same URL is the idempotent case.
    if (ctx.meta.getRepo(name)?.url !== url) throw new SnapError('conflict', `${name} is already registered for another upstream`);
    const jobs = ctx.meta.listJobs(name, 1);
    return sendJson(res, 200, { name, url, created: false, job: jobs[0] ? jobView(jobs[0]) : null });
  }
  const job = ctx.queue.enqueue({ repo: name, ref: null });
  sendJson(res, 201, { name, url, created: true, job: jobView(job) });
}

async function syncRepo(ctx: ApiContext, name: string, body: Record<string, unknown>, res: ServerResponse): Promise<void> {
  getRepoOr404(ctx, name);
  let ref: string | null = null;
  if (typeof body.branch === 'string' && body.branch) {
    ref = body.branch.startsWith('refs/') ? body.branch : `refs/heads/${body.branch}`;
    if (!isValidRefName(ref)) throw new SnapError('invalid', `invalid branch name ${JSON.stringify(body.branch)}`);
  }
  const job = ctx.queue.enqueue({ repo: name, ref });
  sendJson(res, 202, { job: jobView(job) });
}

function status(ctx: ApiContext, name: string) {
  const repo = getRepoOr404(ctx, name);
  return {
    name: repo.name,
    url: repo.url,
    defaultBranch: repo.defaultBranch,
    refs: ctx.meta.listRefs(name).map(refView),
    jobs: ctx.meta.listJobs(name, 10).map(jobView),
  };
}

async function resolve(ctx: ApiContext, name: string, refParam: string, res: ServerResponse): Promise<void> {
  const repo = getRepoOr404(ctx, name);
  let candidates: string[];
  if (refParam === '' || refParam === 'HEAD') {
    candidates = repo.defaultBranch ? [`refs/heads/${repo.defaultBranch}`] : [];
  } else if (refParam.startsWith('refs/')) {
    candidates = [refParam];
  } else {
    candidates = [`refs/heads/${refParam}`, `refs/tags/${refParam}`]; // git clone --branch: branches first, then tags
  }
  if (candidates.some((c) => !isValidRefName(c))) throw new SnapError('invalid', `invalid branch or tag ${JSON.stringify(refParam)}`);
  for (const c of candidates) {
    const rec = ctx.meta.getRef(name, c);
    if (rec) return sendJson(res, 200, { repo: name, upstream: repo.url, ...refView(rec) });
  }
  // Not built yet. A build in flight, or one we can start, means "come back later".
  const recent = ctx.meta.listJobs(name, 20);
  const active = recent.find((j) => (j.state === 'queued' || j.state === 'running') && (j.ref === null || candidates.includes(j.ref)));
  if (active) return sendJson(res, 202, { status: 'building', job: jobView(active) });
  const last = recent.find((j) => j.ref === null || candidates.includes(j.ref));
  if (last?.state === 'failed')
    throw new SnapError('build-failed', `the last build of ${name} failed: ${last.error ?? 'unknown error'} (run snapclone sync ${name} to retry)`);
  const mirror = ctx.sync.mirrorDir(name);
  if (existsSync(`${mirror}/HEAD`)) {
    const refs = await snapshotRefs(mirror);
    const found = candidates.find((c) => refs.some((r) => r.name === c));
    if (found) return sendJson(res, 202, { status: 'building', job: jobView(ctx.queue.enqueue({ repo: name, ref: found })) });
  }
  if (candidates.length === 0) {
    if (last?.state === 'succeeded') throw new SnapError('not-found', `the upstream of ${name} has no default branch; clone with --branch`);
    return sendJson(res, 202, { status: 'building', job: jobView(ctx.queue.enqueue({ repo: name, ref: null })) });
  }
  throw new SnapError('not-found', `no branch or tag ${JSON.stringify(refParam)} in ${name} (if it is new upstream, run snapclone sync ${name})`);
}
