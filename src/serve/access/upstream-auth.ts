/**
 * Reading a private repository (CONTRACTS: private repositories): the admin token, or the
 * caller's own upstream credential in `Snapclone-Upstream-Authorization`, proven by asking the
 * upstream (probe.ts) with it. Answers are cached per (SHA-256 of the value, repository,
 * upstream URL): granted 60 s, denied 10 s; errors and timeouts are not cached and fail closed.
 * The value is never logged or stored: only its digest is kept, as a cache key.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RepoRecord } from '../../metadata/metadata-store.js';
import { SnapError } from '../../util/errors.js';
import { sendJson } from '../http-util.js';
import { isHttpUpstream, probeInfoRefs, PROBE_TIMEOUT_MS } from './probe.js';

export const UPSTREAM_AUTH_HEADER = 'snapclone-upstream-authorization';

/** Where a caller's credential must come from, as git credential fill takes it. */
export interface UpstreamInfo {
  protocol: 'http' | 'https';
  host: string;
  path: string;
}

/**
 * A refused read: 401 (no credential) or 403 (refused), with the upstream to get a credential
 * for when it is http(s). Sent by sendAccessError (a plain SnapError answers 401 only).
 */
/** Credential probes running at once, all callers together; beyond it a read answers 429. */
const MAX_PROBES_IN_FLIGHT = 32;

export class AccessDenied extends SnapError {
  constructor(
    readonly status: 401 | 403,
    message: string,
    readonly upstream: UpstreamInfo | null,
  ) {
    super('unauthorized', message);
  }
}

/** Answer an AccessDenied: its status, body with `upstream`, and the challenge on a 401. */
export function sendAccessError(res: ServerResponse, err: AccessDenied): void {
  if (err.status === 401 && err.upstream) res.setHeader('www-authenticate', `Snapclone-Upstream realm="${err.upstream.host.replace(/["\\]/g, '')}"`);
  sendJson(res, err.status, { error: err.message, code: 'unauthorized', ...(err.upstream ? { upstream: err.upstream } : {}) });
}

/** protocol/host/path of an http(s) upstream, never its user info; null for other transports. */
export function upstreamInfo(url: string): UpstreamInfo | null {
  if (!isHttpUpstream(url)) return null;
  try {
    const u = new URL(url);
    return { protocol: u.protocol === 'https:' ? 'https' : 'http', host: u.host, path: decodeURIComponent(u.pathname.replace(/^\/+/, '')) };
  } catch {
    return null;
  }
}

export interface UpstreamAuthOptions {
  grantedMs?: number;
  deniedMs?: number;
  timeoutMs?: number;
  /** Cached answers kept at most (oldest go first). */
  maxEntries?: number;
  now?: () => number;
}

type Verdict = 'granted' | 'denied';

export class UpstreamAuth {
  readonly #cache = new Map<string, { verdict: Verdict; until: number }>();
  /** Probes in flight by cache key: a burst of one caller's requests asks the upstream once. */
  readonly #inFlight = new Map<string, Promise<Verdict>>();
  readonly #o: Required<UpstreamAuthOptions>;

  constructor(opts: UpstreamAuthOptions = {}) {
    this.#o = { grantedMs: 60_000, deniedMs: 10_000, timeoutMs: PROBE_TIMEOUT_MS, maxEntries: 10_000, now: Date.now, ...opts };
  }

  /**
   * Throws AccessDenied unless `req` may read `repo`: public, or `admin` (the configured admin
   * token was presented), or a credential the upstream accepts. Unreachable upstream: 502,
   * timeout: 504; nothing is served either way.
   */
  async requireRead(repo: RepoRecord, req: IncomingMessage, admin: boolean): Promise<void> {
    if (repo.visibility !== 'private' || admin) return;
    const info = upstreamInfo(repo.url);
    const raw = req.headers[UPSTREAM_AUTH_HEADER];
    const value = typeof raw === 'string' ? raw.trim() : '';
    if (!info) {
      throw new AccessDenied(value ? 403 : 401, `${repo.name} is private and its upstream is not http(s): only the admin token reads it`, null);
    }
    if (!value) throw new AccessDenied(401, `${repo.name} is private: send your credential for ${info.protocol}://${info.host}/${info.path} in Snapclone-Upstream-Authorization`, info);
    if (!/^[A-Za-z][A-Za-z0-9._~+/-]* +\S/.test(value) || /[\x00-\x1f\x7f]/.test(value))
      throw new AccessDenied(403, 'Snapclone-Upstream-Authorization must be "<scheme> <credentials>" (e.g. Basic ..., Bearer ...)', info);
    if ((await this.#verdict(repo, value)) === 'granted') return;
    throw new AccessDenied(403, `${info.host} refused the credential for ${info.path}: it cannot read ${repo.name}`, info);
  }

  async #verdict(repo: RepoRecord, value: string): Promise<Verdict> {
    const key = `${createHash('sha256').update(value).digest('hex')}\0${repo.name}\0${repo.url}`;
    const now = this.#o.now();
    const hit = this.#cache.get(key);
    if (hit && hit.until > now) return hit.verdict;
    if (hit) this.#cache.delete(key);
    let pending = this.#inFlight.get(key);
    if (!pending) {
      // Bounded: a flood of made-up credentials must not become a flood of logins at the forge
      // from this server's address (which the forge could then lock out, our own fetches included).
      if (this.#inFlight.size >= MAX_PROBES_IN_FLIGHT) throw new SnapError('rate-limited', 'too many upstream credential checks at once; try again shortly');
      pending = this.#probe(repo.url, value).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, pending);
      void pending.then(
        (verdict) => this.#remember(key, verdict),
        () => {}, // errors are not cached: the next request asks again
      );
    }
    return pending;
  }

  async #probe(url: string, value: string): Promise<Verdict> {
    const answer = await probeInfoRefs(url, value, this.#o.timeoutMs);
    const host = upstreamInfo(url)?.host ?? 'the upstream';
    switch (answer.kind) {
      case 'readable':
        return 'granted';
      case 'refused':
        return 'denied';
      case 'other':
        // A 404 or a web page with a credential: it cannot read it there (forges hide private repositories as 404).
        if (/HTTP (404|410)\b/.test(answer.why) || /not a git advertisement/.test(answer.why)) return 'denied';
        throw new SnapError('unreachable', `cannot check access to ${host}: ${answer.why}`);
      case 'timeout':
        throw new SnapError('timeout', `cannot check access to ${host}: ${answer.why}`);
      case 'error':
        throw new SnapError('unreachable', `cannot check access to ${host}: ${answer.why}`);
    }
  }

  #remember(key: string, verdict: Verdict): void {
    const until = this.#o.now() + (verdict === 'granted' ? this.#o.grantedMs : this.#o.deniedMs);
    this.#cache.delete(key);
    this.#cache.set(key, { verdict, until });
    while (this.#cache.size > this.#o.maxEntries) this.#cache.delete(this.#cache.keys().next().value!);
  }
}
