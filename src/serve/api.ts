/**
 * The HTTP API (documented in docs/API.md). Read endpoints are open (digests are
 * not secrets); endpoints that change state (add, sync, remove, re-point) need
 * the admin token when one is configured, and one must be configured when the
 * server listens beyond loopback. A resolve without the token may start a build
 * of an unbuilt ref, within the per-repository bound of on-demand.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { existsSync } from 'node:fs';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ArtifactStore } from '../storage/artifact-store.js';
import type { JobRecord, MetadataStore, RefRecord, RepoRecord } from '../metadata/metadata-store.js';
import type { JobQueue } from '../queue/job-queue.js';
import { lsRemote, normalizeUpstreamUrl, upstreamKey, type RemoteRefs } from '../builder/upstream.js';
import { MirrorRefs } from './mirror-refs.js';
import { assertRepoName, nameFromUrl } from '../clonepack/names.js';
import { isValidRefName } from '../clonepack/refs.js';
import { SnapError } from '../util/errors.js';
import { log } from '../util/log.js';
import { readJson, sendError, sendJson } from './http-util.js';
import { reportArtifact, serveArtifact } from './artifacts.js';
import type { HotArtifactCache } from './hot-cache.js';
import type { ArtifactIntegrity } from './integrity.js';
import { damagedArtifacts } from './manifest-health.js';
import type { SyncService } from './sync.js';
import { receiveWebhook, WebhookReads } from './hooks.js';
import { latestSnapshot } from './records.js';
import type { PresignedDownloads } from './downloads.js';
import { ManifestComposer } from './compose.js';
import { InlineArtifacts, inlineTableMaxFrom, sendResolveAnswer } from './resolve-inline.js';
import { GarbageCollector, gcOptionsFromEnv } from './gc/collector.js';
import { routeGc } from './gc-api.js';
import { MANIFEST_MODES, modeServes, type ManifestMode } from '../clonepack/manifest.js';
import { recordClone, recordResolve, sendMetrics } from './metrics.js';
import { ReadinessCheck, sendReadiness } from './readiness.js';
import { ON_DEMAND_LIMITS, OnDemandBuilds, RateLimited, type OnDemandLimits } from './on-demand.js';
import { determineVisibility, parseVisibility } from './access/visibility.js';
import { AccessDenied, sendAccessError, UpstreamAuth } from './access/upstream-auth.js';
import { ArtifactSigner, PrivateMarks, requireArtifactAccess, urlKeyFrom, urlSecondsFrom } from './access/signed-urls.js';
import { isUncounted, RateLimiter, rateLimitFrom, type RateLimitSettings } from './access/rate-limit.js';

export interface ApiContext {
  store: ArtifactStore;
  meta: MetadataStore;
  queue: JobQueue;
  sync: SyncService;
  /** SHA-256 of the admin token, or null when none is required. */
  adminTokenHash: Buffer | null;
  /** SHA-256 of a token that opens GET /metrics only (the admin token opens it too); null or absent: none. */
  metricsTokenHash?: Buffer | null;
  hot?: HotArtifactCache;
  /** Bound on builds started by resolves without the admin token (default ON_DEMAND_LIMITS). */
  onDemandLimits?: OnDemandLimits;
  integrity: ArtifactIntegrity;
  /** Composes and remembers manifests from ref records (one per server: the scrubber shares it). */
  composer?: ManifestComposer;
  /** Presigned object-store URLs for resolve answers; absent: clients fetch through the server. */
  downloads?: PresignedDownloads | null;
  /**
   * Builds run in other processes too (the shared queue): this process's mirrors, if any, are as
   * stale as its last build, so what the refs are comes from the database (the latest snapshot).
   */
  sharedBuilds?: boolean;
  /** Access control (access/): the proof of callers' upstream credentials (default: a fresh one). */
  upstreamAuth?: UpstreamAuth;
  /** Signs and checks artifact queries (default: key and TTL from SNAPCLONE_URL_KEY / _SECONDS). */
  signer?: ArtifactSigner;
  /** Per-address limit (default from SNAPCLONE_RATE_LIMIT); null: off. */
  rateLimit?: RateLimitSettings | null;
  /** Garbage collection (POST/GET /v1/gc); absent: one with the environment's settings. */
  gc?: GarbageCollector;
}

interface Api extends ApiContext {
  upstreamAuth: UpstreamAuth;
  signer: ArtifactSigner;
  privateMarks: PrivateMarks;
  limiter: RateLimiter | null;
  onDemand: OnDemandBuilds;
  mirrorRefs: MirrorRefs;
  composer: ManifestComposer;
  gc: GarbageCollector;
  quarantinedCount(): Promise<number>;
  hookReads: WebhookReads;
  readiness: ReadinessCheck;
  inline: InlineArtifacts;
}

export function apiHandler(context: ApiContext) {
  const isActive = async (id: number) => {
    const job = await context.meta.getJob(id);
    return !!job && isUnfinished(job);
  };
  const ctx: Omit<Api, 'limiter' | 'gc' | 'quarantinedCount'> = { ...context, onDemand: new OnDemandBuilds(context.onDemandLimits ?? ON_DEMAND_LIMITS, isActive), mirrorRefs: new MirrorRefs(),
    composer: context.composer ?? new ManifestComposer(context.store, context.meta),
    hookReads: new WebhookReads(),
    readiness: new ReadinessCheck(context),
    upstreamAuth: context.upstreamAuth ?? new UpstreamAuth(),
    signer: context.signer ?? new ArtifactSigner(urlKeyFrom(process.env, context.adminTokenHash), urlSecondsFrom(process.env), context.store),
    privateMarks: new PrivateMarks(context.meta, context.store),
    inline: new InlineArtifacts(context, inlineTableMaxFrom(process.env)),
  };
  const gc = context.gc ?? new GarbageCollector(ctx.store, ctx.meta, ctx.composer, gcOptionsFromEnv());
  const limit = context.rateLimit === undefined ? rateLimitFrom(process.env) : context.rateLimit;
  // /healthz is open and uncounted: requests that arrive while the quarantine is being listed
  // (an S3 LIST) share that listing, so a flood of them is one listing at a time.
  let listing: Promise<number> | null = null;
  const quarantinedCount = (): Promise<number> =>
    (listing ??= ctx.store
      .listQuarantined()
      .then((q) => q.length)
      .finally(() => (listing = null)));
  const full: Api = { ...ctx, gc, quarantinedCount, limiter: limit ? new RateLimiter(limit) : null };
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      await route(full, req, res);
    } catch (err) {
      if (err instanceof AccessDenied && !res.headersSent) return sendAccessError(res, err);
      sendError(res, err);
    }
  };
}

async function route(ctx: Api, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x');
  const parts = url.pathname.split('/').slice(1).map(decodeSegment);
  const method = req.method ?? 'GET';
  if (ctx.limiter && !isUncounted(method, url.pathname) && !presentsAdminToken(ctx, req)) {
    const took = ctx.limiter.take(ctx.limiter.clientOf(req));
    if (!took.ok) {
      res.setHeader('retry-after', String(took.retryAfter));
      throw new SnapError('rate-limited', `too many requests from this address; retry in ${took.retryAfter} s`);
    }
  }
  if (url.pathname === '/healthz') {
    const quarantined = await ctx.quarantinedCount(); // damaged artifacts degrade, not fail: the rest still serves
    return sendJson(res, 200, { status: quarantined ? 'degraded' : 'ok', quarantined });
  }
  if (url.pathname === '/readyz' && (method === 'GET' || method === 'HEAD')) return sendReadiness(res, ctx.readiness); // open: load balancers ask
  if (url.pathname === '/metrics' && (method === 'GET' || method === 'HEAD')) {
    requireMetricsAccess(ctx, req);
    return sendMetrics(res, ctx.queue, method === 'HEAD');
  }
  if (parts[0] !== 'v1') return sendJson(res, 404, { error: 'not found', code: 'not-found' });

  if (parts[1] === 'artifacts' && parts.length === 3 && (method === 'GET' || method === 'HEAD')) {
    await requireArtifactAccess(ctx.signer, ctx.meta, parts[2]!, url.searchParams);
    return serveArtifact(ctx, parts[2]!, req, res);
  }
  if (parts[1] === 'artifacts' && parts.length === 4 && parts[3] === 'report' && method === 'POST') {
    await requireArtifactAccess(ctx.signer, ctx.meta, parts[2]!, url.searchParams);
    return reportArtifact(ctx, parts[2]!, await readJson(req), res);
  }
  if (parts[1] === 'hooks' && parts.length === 3 && method === 'POST') return receiveWebhook(ctx, parts[2]!, req, res); // signed by the provider, not the admin token
  if (parts[1] === 'gc' && parts.length === 2 && (await routeGc(ctx.gc, isAdmin(ctx, req), method, req, res))) return;
  if (parts[1] === 'jobs' && parts.length === 3 && method === 'GET') {
    const job = await ctx.meta.getJob(Number(parts[2]));
    if (!job) return sendJson(res, 404, { error: `no job ${parts[2]}`, code: 'not-found' });
    const repo = await ctx.meta.getRepo(job.repo);
    // A job of a repository removed since is shown as before (a client waiting on it learns its
    // end); its visibility went with the registration.
    if (repo) await ctx.upstreamAuth.requireRead(repo, req, presentsAdminToken(ctx, req));
    return sendJson(res, 200, jobView(job));
  }
  if (parts[1] === 'repos' && parts.length === 2) {
    if (method === 'GET') {
      const admin = presentsAdminToken(ctx, req);
      const shown = (await ctx.meta.listRepos()).filter((r) => r.visibility === 'public' || admin); // private ones only to the admin
      return sendJson(res, 200, { repos: shown.map((r) => ({ name: r.name, url: r.url, defaultBranch: r.defaultBranch, visibility: r.visibility })) });
    }
    if (method === 'POST') {
      requireAdmin(ctx, req);
      return addRepo(ctx, await readJson(req), res);
    }
  }
  if (parts[1] === 'repos' && parts.length >= 3) {
    const name = parts[2]!;
    const action = parts[3];
    if (parts.length === 3 && method === 'GET')
    {
      await requireRepoRead(ctx, name, req);
      const st = await status(ctx, name);
      const digests = st.refs.flatMap((r) => (r.manifest ? [r.manifest.digest] : []));
      return sendJson(res, 200, { ...st, damaged: await damagedArtifacts(ctx.store, digests) });
    }
    if (parts.length === 3 && method === 'DELETE') {
      requireAdmin(ctx, req);
      return removeRepo(ctx, name, res);
    }
    if (parts.length === 3 && method === 'PATCH') {
      requireAdmin(ctx, req);
      return setRepoUrl(ctx, name, await readJson(req), res);
    }
    if (action === 'resolve' && parts.length === 4 && method === 'GET')
      return timed(res, async () => (await requireRepoRead(ctx, name, req), resolve(ctx, name, url.searchParams.get('ref') ?? '', parseMode(url.searchParams.get('mode')), isAdmin(ctx, req), url.searchParams.get('proxy') === '1', url.searchParams.get('inline') === '1', url.searchParams.get('peek') === '1', res)));
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

/** Whether the request may call admin endpoints: it carries the token, or none is configured. */
function isAdmin(ctx: ApiContext, req: IncomingMessage): boolean {
  if (!ctx.adminTokenHash) return true;
  return bearerIs(req, ctx.adminTokenHash);
}

/** Whether the request's bearer token hashes to `hash` (compared in constant time). */
function bearerIs(req: IncomingMessage, hash: Buffer): boolean {
  const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
  const given = createHash('sha256').update(m?.[1] ?? '').digest();
  return !!m && timingSafeEqual(given, hash);
}

/**
 * /metrics tells how busy the server is and what fails: closed like the admin endpoints when a
 * token is configured (the admin token, or the metrics-only one a scraper can hold without
 * being able to change anything).
 */
export function requireMetricsAccess(ctx: Pick<ApiContext, 'adminTokenHash' | 'metricsTokenHash'>, req: IncomingMessage): void {
  const metricsHash = ctx.metricsTokenHash ?? null;
  if (!ctx.adminTokenHash && !metricsHash) return;
  if ((ctx.adminTokenHash && bearerIs(req, ctx.adminTokenHash)) || (metricsHash && bearerIs(req, metricsHash))) return;
  throw new SnapError('unauthorized', '/metrics needs the metrics or admin token (Authorization: Bearer ...)');
}

/** A resolve, timed for /metrics by how it ended: served (200), building (202) or error. */
async function timed(res: ServerResponse, run: () => Promise<void>): Promise<void> {
  const t0 = performance.now();
  let outcome: 'served' | 'building' | 'error' = 'error';
  try {
    await run();
    outcome = res.statusCode === 200 ? 'served' : res.statusCode === 202 ? 'building' : 'error';
  } finally {
    recordResolve(outcome, (performance.now() - t0) / 1000);
  }
}

/**
 * Whether the request presents the configured admin token (a server without one has no such
 * caller: then everybody is "admin" for the admin endpoints, on loopback, but not for reading
 * private repositories or skipping the rate limit).
 */
function presentsAdminToken(ctx: ApiContext, req: IncomingMessage): boolean {
  return !!ctx.adminTokenHash && bearerIs(req, ctx.adminTokenHash);
}

/** The read gate of every per-repository read (access/upstream-auth.ts); 404 first, as before. */
async function requireRepoRead(ctx: Api, name: string, req: IncomingMessage): Promise<RepoRecord> {
  const repo = await getRepoOr404(ctx, name);
  await ctx.upstreamAuth.requireRead(repo, req, presentsAdminToken(ctx, req));
  return repo;
}

function requireAdmin(ctx: ApiContext, req: IncomingMessage): void {
  if (!isAdmin(ctx, req)) throw new SnapError('unauthorized', 'this endpoint needs the admin token (Authorization: Bearer ...)');
}

function jobView(job: JobRecord) {
  return {
    id: job.id,
    repo: job.repo,
    ref: job.ref,
    state: job.state,
    phase: job.phase,
    error: job.error,
    errorCode: job.errorCode,
    commit: job.commit,
    createdAt: job.createdAt,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
    /** Claims by workers (the shared queue); a job whose lease ran out too often is 'dead'. */
    attempts: job.attempts,
  };
}

async function getRepoOr404(ctx: ApiContext, name: string): Promise<RepoRecord> {
  assertRepoName(name);
  const repo = await ctx.meta.getRepo(name);
  if (!repo) throw new SnapError('not-found', `unknown repository ${name} (register it with: snapclone add <url> --name ${name})`);
  return repo;
}

async function addRepo(ctx: ApiContext, body: Record<string, unknown>, res: ServerResponse): Promise<void> {
  if (typeof body.url !== 'string') throw new SnapError('invalid', 'body needs "url"');
  // Stored as given (a clone's remote.origin.url is what the user typed, as with git clone),
  // compared by normal form: /x, file:///x and /x/ are one upstream.
  const url = body.url;
  const key = upstreamKey(url);
  if (body.name !== undefined && typeof body.name !== 'string') throw new SnapError('usage', '"name" must be a string');
  // An explicit empty name is a mistake, not a request for the default.
  const name = typeof body.name === 'string' ? body.name : nameFromUrl(key);
  assertRepoName(name);
  const given = parseVisibility(body.visibility);
  const existing = await ctx.meta.getRepo(name);
  if (existing) {
    if (normalizeUpstreamUrl(existing.url) !== key) throw nameTaken(name, existing.url);
    const jobs = await ctx.meta.listJobs(name, 1);
    const built = (await ctx.meta.listRefs(name)).length > 0;
    // Idempotent: nothing new unless the first build never succeeded.
    const job = !built && (jobs.length === 0 || jobs[0]!.state === 'failed') ? await ctx.queue.enqueue({ repo: name, ref: null }) : jobs[0];
    return sendJson(res, 200, { name, url: existing.url, visibility: existing.visibility, created: false, job: job ? jobView(job) : null });
  }
  // Undeterminable visibility is refused before anything else is asked or registered.
  const visibility = await determineVisibility(url, given);
  await lsRemote(url); // unreachable or not a git repository: fail before registering anything
  if (!(await ctx.meta.addRepo({ name, url, defaultBranch: null, createdAt: Date.now(), visibility }))) {
    // Registered meanwhile by a concurrent add: same URL is the idempotent case.
    const now = await ctx.meta.getRepo(name);
    if (now && normalizeUpstreamUrl(now.url) !== key) throw nameTaken(name, now.url);
    const jobs = await ctx.meta.listJobs(name, 1);
    return sendJson(res, 200, { name, url: now?.url ?? url, visibility: now?.visibility ?? visibility, created: false, job: jobs[0] ? jobView(jobs[0]) : null });
  }
  const job = await ctx.queue.enqueue({ repo: name, ref: null });
  sendJson(res, 201, { name, url, visibility, created: true, job: jobView(job) });
}

function nameTaken(name: string, url: string): SnapError {
  return new SnapError('conflict', `${name} is already registered for ${url}`);
}

async function syncRepo(ctx: ApiContext, name: string, body: Record<string, unknown>, res: ServerResponse): Promise<void> {
  const repo = await getRepoOr404(ctx, name);
  let ref: string | null = null;
  if (typeof body.branch === 'string' && body.branch) {
    const candidates = refCandidates(body.branch);
    // Ask the upstream, not the mirror (a branch pushed since the last sync counts), and
    // answer before queuing: an unknown ref is a 404, an unreachable upstream a 502.
    ref = pickRef(candidates, await lsRemote(repo.url));
    if (!ref) throw new SnapError('not-found', `no branch or tag ${JSON.stringify(body.branch)} in ${repo.url}`);
  }
  const job = await ctx.queue.enqueue({ repo: name, ref });
  sendJson(res, 202, { job: jobView(job) });
}

/** Full ref names a user's branch or tag may mean, in git clone --branch order: branch first, then tag. */
function refCandidates(name: string): string[] {
  const candidates = name.startsWith('refs/') ? [name] : [`refs/heads/${name}`, `refs/tags/${name}`];
  if (candidates.some((c) => !isValidRefName(c))) throw new SnapError('usage', `invalid branch or tag ${JSON.stringify(name)}`);
  return candidates;
}

function pickRef(candidates: string[], remote: RemoteRefs): string | null {
  return candidates.find((c) => remote.refs.has(c)) ?? null;
}

/** The clone mode a resolve asks for: shallow (--depth 1), files, or full (the default). */
function parseMode(v: string | null): ManifestMode {
  if (v === null || v === '') return 'full';
  if (!(MANIFEST_MODES as readonly string[]).includes(v)) throw new SnapError('usage', `mode must be one of ${MANIFEST_MODES.join(', ')}, got ${JSON.stringify(v)}`);
  return v as ManifestMode;
}

/**
 * The record that serves `want` for a ref: the newest (largest seq) of the modes serving it; on
 * a tie the earliest such mode, whose manifest is just what the clone needs (a shallow one lists
 * only the ref and its followed tags, as git clone --depth 1 has them).
 */
async function servingRecord(ctx: ApiContext, name: string, ref: string, want: ManifestMode): Promise<RefRecord | null> {
  return pickServing(await ctx.meta.getRefModes(name, ref), want);
}

function pickServing(records: RefRecord[], want: ManifestMode): RefRecord | null {
  let best: RefRecord | null = null;
  for (const r of records) {
    if (!modeServes(r.mode, want)) continue;
    if (!best || r.seq > best.seq || (r.seq === best.seq && modeServes(best.mode, r.mode))) best = r;
  }
  return best;
}

async function status(ctx: Api, name: string) {
  const repo = await getRepoOr404(ctx, name);
  const byRef = new Map<string, RefRecord[]>();
  for (const r of await ctx.meta.listRefs(name)) byRef.set(r.ref, [...(byRef.get(r.ref) ?? []), r]);
  const refs = [];
  for (const [ref, recs] of byRef) {
    // The full record when there is one (what a plain clone gets), else the latest mode built so far.
    const shown = pickServing(recs, 'full') ?? pickServing(recs, 'files') ?? pickServing(recs, 'shallow')!;
    let manifest: { digest: string; size: number } | null = null;
    let sizes = null;
    try {
      const m = await ctx.composer.manifestFor(shown);
      if (repo.visibility === 'private') await ctx.privateMarks.mark(m.digest); // its digest is about to be shown
      manifest = { digest: m.digest, size: m.size };
      sizes = m.sizes;
    } catch (err) {
      log.warn(`cannot compose the manifest of ${name} ${ref} (${shown.mode}): ${(err as Error).message}`);
    }
    const modes: Record<string, { commit: string | null } | null> = {};
    for (const mode of MANIFEST_MODES) {
      const r = recs.find((x) => x.mode === mode);
      modes[mode] = r ? { commit: r.commit } : null;
    }
    refs.push({ ref, commit: shown.commit, mode: shown.mode, manifest, builtAt: shown.builtAt, sizes, modes });
  }
  return {
    name: repo.name,
    url: repo.url,
    defaultBranch: repo.defaultBranch,
    visibility: repo.visibility,
    refs,
    jobs: (await ctx.meta.listJobs(name, 10)).map(jobView),
  };
}

/**
 * `newer` of a resolve: set when a sync of the ref is queued or running and either the ref's
 * tip in the mirror (as the server last fetched it) is not the commit being served, or the job
 * has not asked the upstream and fetched yet (a push just arrived): then `commit` is null.
 */
async function newerBuild(ctx: Api, name: string, ref: string, commit: string | null): Promise<{ commit: string | null; job: number | null } | null> {
  const jobs = (await ctx.meta.listJobs(name, 20)).filter((j) => isUnfinished(j) && (j.ref === null || j.ref === ref));
  if (jobs.length === 0) return null;
  const job = jobs.find((j) => j.state === 'running') ?? jobs[jobs.length - 1]!;
  const unfetched = jobs.filter((j) => !hasFetched(j)).at(-1); // the oldest: it fetches first
  const mirror = ctx.sync.mirrorDir(name);
  let tip: string | null = null;
  if (!ctx.sharedBuilds && existsSync(`${mirror}/HEAD`)) {
    try {
      const entry = (await ctx.mirrorRefs.get(mirror)).find((r) => r.name === ref);
      tip = entry ? (entry.peeled ?? entry.oid) : null;
    } catch {
      tip = null; // the mirror is being replaced: nothing known
    }
  } else if (job.state === 'running') {
    // No mirror to read (builds run on workers): a job of this very ref names what it fetched; a
    // plain sync's commit is whatever it builds at the moment, so only "something newer".
    return { commit: job.ref === ref ? job.commit : null, job: job.id };
  }
  if (tip !== null && tip !== commit) return { commit: tip, job: job.id };
  return unfetched ? { commit: null, job: unfetched.id } : null;
}

/** Phases of a sync before its fetch is done (sync.ts reports them; the queue starts at these). */
const BEFORE_FETCH = new Set(['queued', 'starting', 'asking upstream', 'fetching']);

/** A sync names its commit once it has fetched (sync.ts); the phase (written at most every 300 ms) covers the rest. */
function hasFetched(j: JobRecord): boolean {
  return j.state === 'running' && (j.commit !== null || !BEFORE_FETCH.has(j.phase));
}

/** Seconds a client waits before asking again while the first build of a mode runs. */
const BUILDING_RETRY_AFTER = 2;

function building(res: ServerResponse, job: JobRecord): void {
  res.setHeader('retry-after', String(BUILDING_RETRY_AFTER));
  sendJson(res, 202, { status: 'building', job: jobView(job), retryAfter: BUILDING_RETRY_AFTER });
}

/**
 * `peek`: a lookup a client may do without (the files manifest for --depth 1 from
 * the archive): what is built, else 204 at once; never a build started, a job to
 * follow, a failed build's error or a clone counted.
 */
async function resolve(ctx: Api, name: string, refParam: string, want: ManifestMode, admin: boolean, proxy: boolean, inline: boolean, peek: boolean, res: ServerResponse): Promise<void> {
  const repo = await getRepoOr404(ctx, name);
  const defaultRef = repo.defaultBranch ? `refs/heads/${repo.defaultBranch}` : null;
  const candidates = refParam === '' || refParam === 'HEAD' ? (defaultRef ? [defaultRef] : []) : refCandidates(refParam);
  for (const c of candidates) {
    const rec = await servingRecord(ctx, name, c, want);
    // A branch that does not exist (built without a commit) is cloned only as the default, as git clone does.
    if (rec && (rec.commit !== null || refParam === '' || refParam === 'HEAD')) {
      const m = await ctx.composer.manifestFor(rec);
      // Marked before anyone learns the digest: from then on only a signed query reaches them.
      if (repo.visibility === 'private') await ctx.privateMarks.mark(m.digest);
      const newer = await newerBuild(ctx, name, rec.ref, rec.commit);
      if (!peek) recordClone(want);
      // The inline field after the private marking above: its bytes go only where the digest may.
      const inlined = inline ? await ctx.inline.field(m) : undefined;
      return sendResolveAnswer(res, {
        repo: name,
        upstream: repo.url,
        ref: rec.ref,
        commit: rec.commit,
        mode: rec.mode,
        manifest: { digest: m.digest, size: m.size },
        builtAt: rec.builtAt,
        sizes: m.sizes,
        newer,
        downloads: ctx.downloads && !proxy ? await ctx.downloads.forManifest(m.digest) : null,
        signed: ctx.signer.sign(m.digest),
      }, inlined);
    }
  }
  if (peek) {
    res.writeHead(204, { 'cache-control': 'no-store' });
    return void res.end();
  }
  // Not built yet for this mode. A build in flight, or one we can start, means "come back later".
  // The refs as this server knows them: its mirror, or (builds on workers) the newest refs snapshot.
  const known = await knownRefs(ctx, name);
  const mirrored = known !== null;
  // A job is about this request if it builds one of the candidates; a plain sync builds the
  // default branch, and is the only way to learn anything while there is no mirror yet.
  const about = (j: JobRecord) => (j.ref === null ? !mirrored || defaultRef === null || candidates.includes(defaultRef) : candidates.includes(j.ref));
  const recent = await ctx.meta.listJobs(name, 20);
  const inFlight = recent.find((j) => isUnfinished(j) && about(j));
  if (inFlight) return building(res, inFlight);
  // The last finished job about these refs: if it failed, say why (with its code) rather than
  // retrying on every request. A later successful plain sync clears the way for a retry.
  const last = recent.find((j) => (j.state === 'failed' && about(j)) || (j.state === 'succeeded' && (about(j) || j.ref === null)));
  if (last?.state === 'failed') throw failedBuild(name, refParam, last);
  let target: string | null = null;
  if (known) {
    const refs = known;
    target = candidates.find((c) => refs.some((r) => r.name === c)) ?? null;
  }
  if (!target) {
    if (candidates.length > 0) throw new SnapError('not-found', `no branch or tag ${JSON.stringify(refParam)} in ${name} (if it is new upstream, run snapclone sync ${name})`);
    if (last?.state === 'succeeded') throw new SnapError('not-found', `the upstream of ${name} has no default branch; clone with --branch`);
  }
  // Checked again after the await above; a request racing this one joins the same job in the
  // queue (an enqueue of a ref already queued returns that job).
  const joined = (await ctx.meta.listJobs(name, 20)).find((j) => isUnfinished(j) && j.ref === target);
  if (joined) return building(res, joined);
  const enqueue = () => ctx.queue.enqueue({ repo: name, ref: target });
  let job: JobRecord;
  try {
    job = admin ? await enqueue() : await ctx.onDemand.start(name, enqueue);
  } catch (err) {
    if (err instanceof RateLimited) res.setHeader('retry-after', String(err.retryAfterSeconds));
    throw err;
  }
  building(res, job);
}

/** The mirror's refs (one shared git run for many requests), else the latest snapshot's, else null: nothing fetched yet. */
async function knownRefs(ctx: Api, name: string): Promise<Array<{ name: string }> | null> {
  const mirror = ctx.sync.mirrorDir(name);
  if (!ctx.sharedBuilds && existsSync(`${mirror}/HEAD`)) return ctx.mirrorRefs.get(mirror);
  return (await latestSnapshot(ctx.meta, name))?.data.refs ?? null;
}

function isUnfinished(j: JobRecord): boolean {
  return j.state === 'queued' || j.state === 'running';
}

/** A failed job's error as the client should see it: "no such branch" stays not-found. */
function failedBuild(name: string, refParam: string, job: JobRecord): SnapError {
  const what = refParam ? `${name} ${refParam}` : name;
  if (job.errorCode === 'not-found')
    return new SnapError('not-found', `${job.error ?? 'not found'} (the last build of ${what}; if it is new upstream, run snapclone sync ${name})`);
  const code = job.errorCode === 'unreachable' ? 'unreachable' : 'build-failed';
  return new SnapError(code, `the last build of ${what} failed: ${job.error ?? 'unknown error'} (run snapclone sync ${name} to retry)`);
}

async function removeRepo(ctx: Api, name: string, res: ServerResponse): Promise<void> {
  await getRepoOr404(ctx, name);
  const removed = await ctx.meta.removeRepo(name);
  if (!removed) throw new SnapError('not-found', `unknown repository ${name}`);
  // Listed after the removal: a job starting from now on finds no repository, and one running
  // can no longer publish; the mirror goes once the running ones have stopped.
  const running = (await ctx.meta.unfinishedJobs()).filter((j) => j.repo === name && j.state === 'running');
  ctx.onDemand.forget(name);
  ctx.mirrorRefs.forget(ctx.sync.mirrorDir(name));
  ctx.composer.forget(name);
  // Queued jobs fail when they start (the repository is gone); a running one can no longer
  // publish (publishRef checks the registration), and keeps its mirror until it stops.
  const dropMirror = async () => {
    try {
      if (!(await ctx.meta.getRepo(name))) await ctx.sync.removeMirror(name); // unless registered again meanwhile
    } catch (err) {
      log.error(`could not remove the mirror of ${name}: ${(err as Error).message}`);
    }
  };
  if (running.length === 0) await dropMirror();
  else void Promise.allSettled(running.map((j) => ctx.queue.wait(j.id))).then(dropMirror);
  log.info(`removed ${name} (${removed.url})`);
  sendJson(res, 200, { name, url: removed.url, removed: true });
}

async function setRepoUrl(ctx: Api, name: string, body: Record<string, unknown>, res: ServerResponse): Promise<void> {
  const before = await getRepoOr404(ctx, name);
  if (typeof body.url !== 'string') throw new SnapError('invalid', 'body needs "url"');
  const url = body.url;
  const key = upstreamKey(url);
  // Kept unless given, for another spelling of the same upstream; another upstream is asked like
  // add asks (a public repository re-pointed at a private upstream must not stay public).
  const given = parseVisibility(body.visibility);
  const visibility = given ?? (normalizeUpstreamUrl(before.url) !== key ? await determineVisibility(url, undefined) : undefined);
  const remote = await lsRemote(url); // like add: an unreachable upstream changes nothing
  const repo = await getRepoOr404(ctx, name); // still there after the round trip?
  if (repo.url !== url) {
    // A build of the old URL still running can no longer publish (publishRef checks the URL).
    // Another upstream: nothing built from the old one may be served as the new one's, not even
    // a ref at the same commit (its manifest lists the old upstream's branches and tags), and its
    // history levels must not start the new one's chain. So records, levels and snapshots go in
    // the same transaction as the URL. Clones wait for the sync below, or get its error if it fails.
    const newUpstream = normalizeUpstreamUrl(repo.url) !== key;
    await ctx.meta.setRepoUrl(name, url, { ...(newUpstream ? { newUpstream, defaultBranch: remote.head } : {}), ...(visibility ? { visibility } : {}) });
    if (newUpstream) {
      ctx.mirrorRefs.forget(ctx.sync.mirrorDir(name));
      ctx.composer.forget(name);
    }
    log.info(`re-pointed ${name} from ${repo.url} to ${url}`);
  } else if (visibility && visibility !== repo.visibility) {
    await ctx.meta.setRepoUrl(name, url, { visibility });
  }
  if (visibility && visibility !== repo.visibility) log.info(`${name} is now ${visibility}`);
  const job = await ctx.queue.enqueue({ repo: name, ref: null });
  sendJson(res, 200, { name, url, visibility: visibility ?? repo.visibility, job: jobView(job) });
}
