/**
 * Webhooks: `POST /v1/hooks/github`, `/v1/hooks/gitlab`, `/v1/hooks/gitea`
 * (documented in docs/API.md). Anyone can reach these, so nothing is believed
 * before the sender proves it knows the provider's secret: the raw body is read
 * (bounded in size and in deliveries read at once, the HMAC fed as it arrives) and
 * its signature checked in constant time before a byte of it is parsed. A verified push queues a plain sync of every registered repository
 * whose upstream URL the payload names (the queue coalesces bursts); a deleted
 * branch or tag stops being served at once, and the sync that follows brings
 * the rest up to date.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash, createHmac, timingSafeEqual, type Hmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { JobRecord, MetadataStore } from '../metadata/metadata-store.js';
import type { JobQueue } from '../queue/job-queue.js';
import { normalizeUpstreamUrl } from '../builder/upstream.js';
import { latestSnapshot } from './records.js';
import { snapshotRefs } from '../builder/mirror.js';
import { isValidRefName } from '../clonepack/refs.js';
import { SnapError } from '../util/errors.js';
import { log } from '../util/log.js';
import { parseJsonObject, sendJson } from './http-util.js';

export type Provider = 'github' | 'gitlab' | 'gitea';

/** The environment variable holding each provider's secret; a provider without one is refused. */
export const WEBHOOK_SECRET_ENV: Record<Provider, string> = {
  github: 'SNAPCLONE_GITHUB_WEBHOOK_SECRET',
  gitlab: 'SNAPCLONE_GITLAB_WEBHOOK_SECRET',
  gitea: 'SNAPCLONE_GITEA_WEBHOOK_SECRET',
};

/**
 * Largest body read. GitHub caps deliveries at 25 MB, but a push payload lists at most 20
 * commits and is typically well under 1 MiB; a larger delivery is refused (413-style
 * `invalid`) rather than held in memory, since anyone can send one before it is verified.
 */
export const WEBHOOK_BODY_LIMIT = 5 * 2 ** 20;

/** Deliveries read at once (each holds up to WEBHOOK_BODY_LIMIT); more are answered 429 with Retry-After. */
export const WEBHOOK_READS = 4;

/** A count of the webhook bodies being read, one per API. */
export class WebhookReads {
  #busy = 0;
  constructor(readonly limit = WEBHOOK_READS) {}
  /** A slot, or null when all are taken. Call the returned function to give it back. */
  take(): (() => void) | null {
    if (this.#busy >= this.limit) return null;
    this.#busy++;
    let given = false;
    return () => {
      if (!given) this.#busy--;
      given = true;
    };
  }
}

const ZERO_OID = /^0{40}$|^0{64}$/;

export interface HookContext {
  meta: MetadataStore;
  queue: JobQueue;
  sync: { mirrorDir(repo: string): string };
  hookReads: WebhookReads;
  /** Builds run in other processes too: the refs a sync saw come from the database, not this process's mirror. */
  sharedBuilds?: boolean;
}

/** What a verified payload asks for. */
export interface HookEvent {
  /** `ping` answers 200; `ignored` (an event that is not about refs) too; `push` syncs. */
  kind: 'ping' | 'push' | 'ignored';
  /** The provider's event name, for the answer and the log. */
  event: string;
  /** Every URL the payload gives for its repository. */
  urls: string[];
  /** A full ref name (refs/heads/X or refs/tags/X) the push deleted, or null. */
  deleted: string | null;
}

function isProvider(p: string): p is Provider {
  return p === 'github' || p === 'gitlab' || p === 'gitea';
}

/** Handle one webhook delivery. Errors are thrown as SnapErrors (the API answers them). */
export async function receiveWebhook(ctx: HookContext, provider: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (!isProvider(provider)) throw new SnapError('not-found', `no webhook for ${JSON.stringify(provider)} (github, gitlab or gitea)`);
  const secret = process.env[WEBHOOK_SECRET_ENV[provider]];
  // Refused, not accepted unsigned: without a secret anyone could make the server fetch.
  if (!secret) throw new SnapError('not-found', `${provider} webhooks are off on this server (set ${WEBHOOK_SECRET_ENV[provider]} to turn them on)`);
  const slot = ctx.hookReads.take();
  if (!slot) {
    res.setHeader('retry-after', '1');
    res.setHeader('connection', 'close'); // the body is not read
    throw new SnapError('rate-limited', `too many webhook deliveries at once (${ctx.hookReads.limit}); retry shortly`);
  }
  let body: Buffer;
  try {
    // The signature's form (and GitLab's token) is checked before a byte of the body is read;
    // the HMAC is fed while reading, so the body is held once, never concatenated twice.
    const check = signatureCheck(provider, secret, req);
    if (typeof check === 'string') {
      res.setHeader('connection', 'close'); // refused unread
      refuse(provider, req, check);
    }
    const mac = check ? createHmac('sha256', secret) : null;
    body = await readRawBody(req, res, mac);
    if (check && mac) {
      const problem = check.verify(mac.digest());
      if (problem) refuse(provider, req, problem);
    }
  } finally {
    slot();
  }
  const event = parseEvent(provider, eventHeader(provider, req), parseJsonObject(body, 'webhook body'));
  if (event.kind !== 'push') return sendJson(res, 200, { provider, event: event.event, ignored: event.kind === 'ignored', matched: [], jobs: [] });
  const matched = await matchRepos(ctx.meta, event.urls);
  const jobs: JobRecord[] = [];
  const removed: string[] = [];
  for (const name of matched) {
    if (event.deleted && (await ctx.meta.removeRef(name, event.deleted))) removed.push(name);
    const job = await ctx.queue.enqueue({ repo: name, ref: null });
    jobs.push(job);
    if (event.deleted) forgetIfStillGone(ctx, name, event.deleted, job.id);
    log.info(`webhook ${provider}: ${event.event}${event.deleted ? ` deleting ${event.deleted}` : ''} for ${name}: sync job ${job.id}`);
  }
  if (matched.length === 0) log.info(`webhook ${provider}: ${event.event} for ${event.urls[0] ?? '(no URL)'} matches no registered repository`);
  sendJson(res, 202, {
    provider,
    event: event.event,
    matched,
    removed: event.deleted ? removed.map((repo) => ({ repo, ref: event.deleted })) : [],
    jobs: jobs.map((j) => ({ id: j.id, repo: j.repo, ref: j.ref, state: j.state })),
  });
}

/**
 * A build that was already running when the delete arrived fetched the ref before it was
 * deleted and may publish it again after the removal above. The sync queued for the delete
 * runs after it (one job at a time per repository): once that one has fetched, a ref its
 * mirror no longer has is removed again.
 */
function forgetIfStillGone(ctx: HookContext, repo: string, ref: string, jobId: number): void {
  void ctx.queue
    .wait(jobId)
    .then(async (job) => {
      if (job.state !== 'succeeded') return;
      const dir = ctx.sync.mirrorDir(repo);
      let refs: Array<{ name: string }>;
      if (ctx.sharedBuilds) refs = (await latestSnapshot(ctx.meta, repo))?.data.refs ?? [{ name: ref }]; // none: keep it
      else if (existsSync(`${dir}/HEAD`)) refs = await snapshotRefs(dir);
      else return;
      if (!refs.some((r) => r.name === ref) && (await ctx.meta.removeRef(repo, ref))) log.info(`webhook: ${repo} ${ref} was published again by a build older than its deletion; removed`);
    })
    .catch((err: unknown) => log.warn(`webhook: could not check ${repo} ${ref} after job ${jobId}: ${(err as Error).message}`));
}

function refuse(provider: Provider, req: IncomingMessage, problem: string): never {
  log.warn(`webhook ${provider}: refused a delivery from ${req.socket.remoteAddress ?? '?'}: ${problem}`);
  throw new SnapError('unauthorized', `webhook refused: ${problem}`);
}

async function readRawBody(req: IncomingMessage, res: ServerResponse, mac: Hmac | null): Promise<Buffer> {
  const tooLarge = () => {
    res.setHeader('connection', 'close'); // the rest of the body is not read
    return new SnapError('invalid', `webhook body is larger than ${WEBHOOK_BODY_LIMIT} bytes`);
  };
  if (Number(req.headers['content-length'] ?? 0) > WEBHOOK_BODY_LIMIT) throw tooLarge();
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > WEBHOOK_BODY_LIMIT) throw tooLarge();
    mac?.update(chunk);
    parts.push(chunk);
  }
  return Buffer.concat(parts, size);
}

/**
 * A header's one value. Node joins a repeated header into one "a, b" string (so a repeated
 * signature fails the exact-form match below); an array comes only for set-cookie.
 */
function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? undefined : v;
}

/**
 * What can be checked before the body is read: null when GitLab's token matches (no body
 * signature), a problem string, or the signature to compare with the body's HMAC-SHA256.
 * Never says anything about the secret.
 */
function signatureCheck(provider: Provider, secret: string, req: IncomingMessage): string | null | { verify(mac: Buffer): string | null } {
  if (provider === 'gitlab') {
    const token = header(req, 'x-gitlab-token');
    if (token === undefined) return 'no X-Gitlab-Token header';
    // Hash both sides so the comparison takes the same time whatever the lengths.
    const a = createHash('sha256').update(token).digest();
    const b = createHash('sha256').update(secret).digest();
    return timingSafeEqual(a, b) ? null : 'X-Gitlab-Token does not match';
  }
  const name = provider === 'github' ? 'x-hub-signature-256' : 'x-gitea-signature';
  const shown = provider === 'github' ? 'X-Hub-Signature-256' : 'X-Gitea-Signature';
  const value = header(req, name);
  if (value === undefined) return `no ${shown} header`;
  const m = (provider === 'github' ? /^sha256=([0-9a-fA-F]{64})$/ : /^(?:sha256=)?([0-9a-fA-F]{64})$/).exec(value.trim());
  if (!m) return `${shown} is not ${provider === 'github' ? 'sha256=' : ''}<64 hex digits>`;
  const given = Buffer.from(m[1]!, 'hex');
  return { verify: (mac) => (timingSafeEqual(given, mac) ? null : `${shown} does not match the body`) };
}

/** Why a delivery is not authentic, or null if it is (the whole body at once; receiveWebhook checks while reading). */
export function signatureProblem(provider: Provider, secret: string, req: IncomingMessage, body: Buffer): string | null {
  const check = signatureCheck(provider, secret, req);
  if (check === null || typeof check === 'string') return check;
  return check.verify(createHmac('sha256', secret).update(body).digest());
}

function eventHeader(provider: Provider, req: IncomingMessage): string | undefined {
  const name = provider === 'github' ? 'x-github-event' : provider === 'gitlab' ? 'x-gitlab-event' : 'x-gitea-event';
  return header(req, name) ?? (provider === 'gitea' ? header(req, 'x-github-event') : undefined);
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function strings(o: Record<string, unknown>, keys: string[]): string[] {
  return keys.map((k) => o[k]).filter((v): v is string => typeof v === 'string' && v.length > 0 && v.length <= 2048);
}

/**
 * What a (verified) payload means. Pure: the provider, its event header and the parsed body.
 * GitHub and Gitea: `push` (a deleted branch or tag is a push with `deleted: true` or an all-zero
 * `after`), `create` and `delete` (short `ref` plus `ref_type`), `ping`. GitLab: `Push Hook` and
 * `Tag Push Hook` (a delete has an all-zero `after`); GitLab's "test" button sends a push.
 */
export function parseEvent(provider: Provider, eventName: string | undefined, payload: Record<string, unknown>): HookEvent {
  if (provider === 'gitlab') {
    const event = eventName ?? (typeof payload.object_kind === 'string' ? payload.object_kind : ''); // String() of an object from JSON can throw
    const isPush = /^(Push Hook|Tag Push Hook|System Hook)$/.test(event) && (payload.object_kind === 'push' || payload.object_kind === 'tag_push');
    if (!isPush) return { kind: 'ignored', event: event || 'unknown', urls: [], deleted: null };
    const urls = [
      ...strings(obj(payload.project), ['git_http_url', 'git_ssh_url', 'web_url', 'http_url', 'ssh_url']),
      ...strings(obj(payload.repository), ['git_http_url', 'git_ssh_url', 'homepage', 'url']),
    ];
    return { kind: 'push', event, urls, deleted: deletedRef(payload) };
  }
  const event = eventName ?? '';
  if (event === 'ping') return { kind: 'ping', event, urls: [], deleted: null };
  const urls = strings(obj(payload.repository), ['clone_url', 'ssh_url', 'git_url', 'html_url']);
  if (event === 'push') return { kind: 'push', event, urls, deleted: deletedRef(payload) };
  if (event === 'create' || event === 'delete') {
    const kind = payload.ref_type === 'branch' ? 'refs/heads/' : payload.ref_type === 'tag' ? 'refs/tags/' : null;
    if (!kind || typeof payload.ref !== 'string') return { kind: 'ignored', event, urls: [], deleted: null };
    const ref = kind + payload.ref;
    return { kind: 'push', event, urls, deleted: event === 'delete' && isValidRefName(ref) ? ref : null };
  }
  return { kind: 'ignored', event: event || 'unknown', urls: [], deleted: null };
}

function deletedRef(payload: Record<string, unknown>): string | null {
  const ref = payload.ref;
  const gone = payload.deleted === true || (typeof payload.after === 'string' && ZERO_OID.test(payload.after));
  if (!gone || typeof ref !== 'string') return null;
  return /^refs\/(heads|tags)\//.test(ref) && isValidRefName(ref) ? ref : null;
}

/**
 * The registered repositories whose upstream is one of these URLs, compared by normal form
 * (normalizeUpstreamUrl). Forges answer to `owner/repo` with and without `.git`, and to the
 * scp-like `git@host:path` also as `ssh://git@host/path`, so those spellings count as one;
 * local paths are compared as they are. Several names may share an upstream: all match.
 */
export async function matchRepos(meta: Pick<MetadataStore, 'listRepos'>, urls: string[]): Promise<string[]> {
  const wanted = new Set(urls.flatMap(spellings));
  if (wanted.size === 0) return [];
  return (await meta.listRepos())
    .filter((r) => spellings(r.url).some((s) => wanted.has(s)))
    .map((r) => r.name)
    .sort();
}

function spellings(url: string): string[] {
  const normal = normalizeUpstreamUrl(url);
  if (normal.startsWith('/')) return [normal];
  const scp = /^([^@/]+@)([^:/]+):(.*)$/.exec(normal);
  const forms = scp && !/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(normal) ? [normal, `ssh://${scp[1]}${scp[2]}/${scp[3]!.replace(/^\//, '')}`] : [normal];
  return forms.flatMap((f) => (f.endsWith('.git') ? [f, f.slice(0, -4)] : [f, `${f}.git`]));
}
