/**
 * Rate limiting per client address (CONTRACTS: rate limiting): a token bucket per address,
 * SNAPCLONE_RATE_LIMIT=<per second>/<burst> (default 50/200; 0 turns it off). The address is
 * the socket's peer, or with SNAPCLONE_TRUST_PROXY=1 the last X-Forwarded-For hop, the one the proxy in
 * front appended (only behind such a proxy: otherwise any client could pick its own bucket).
 */
import type { IncomingMessage } from 'node:http';
import { SnapError } from '../../util/errors.js';

export interface RateLimitSettings {
  perSecond: number;
  burst: number;
  trustProxy: boolean;
}

export function rateLimitFrom(env: NodeJS.ProcessEnv): RateLimitSettings | null {
  const raw = (env.SNAPCLONE_RATE_LIMIT ?? '').trim();
  const trustProxy = env.SNAPCLONE_TRUST_PROXY === '1';
  if (raw === '') return { perSecond: 50, burst: 200, trustProxy };
  if (raw === '0' || raw === 'off') return null;
  const m = /^(\d+(?:\.\d+)?)\/(\d+)$/.exec(raw);
  const perSecond = Number(m?.[1]);
  const burst = Number(m?.[2]);
  if (!m || !(perSecond > 0) || !(burst >= 1)) throw new SnapError('usage', `SNAPCLONE_RATE_LIMIT must be <per second>/<burst> (e.g. 50/200) or 0, got ${JSON.stringify(raw)}`);
  return { perSecond, burst, trustProxy };
}

/** Buckets kept at most; the least recently used go first (a full bucket is the same as none). */
const MAX_CLIENTS = 50_000;

export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    readonly settings: RateLimitSettings,
    private readonly now: () => number = () => performance.now(),
  ) {}

  clientOf(req: IncomingMessage): string {
    if (this.settings.trustProxy) {
      const xff = req.headers['x-forwarded-for'];
      // The last hop is the one our proxy appended (the address it saw); earlier ones are the client's to write.
      const hops = (Array.isArray(xff) ? xff.join(',') : xff)?.split(',') ?? [];
      const last = hops[hops.length - 1]?.trim();
      if (last) return last;
    }
    return req.socket.remoteAddress ?? 'unknown';
  }

  /** Takes one token for `client`; when there is none, the seconds until there is one. */
  take(client: string): { ok: true } | { ok: false; retryAfter: number } {
    const { perSecond, burst } = this.settings;
    const now = this.now();
    const b = this.#buckets.get(client) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
    b.at = now;
    this.#buckets.delete(client); // re-inserted: the map's order is least recently used first
    this.#buckets.set(client, b);
    if (this.#buckets.size > MAX_CLIENTS) this.#buckets.delete(this.#buckets.keys().next().value!);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfter: Math.max(1, Math.ceil((1 - b.tokens) / perSecond)) };
  }
}

/** Requests the limit does not count: probes, scrapes, and artifact reads (bounded by the manifest). */
export function isUncounted(method: string, path: string): boolean {
  if (path === '/healthz' || path === '/readyz' || path === '/metrics') return true;
  return (method === 'GET' || method === 'HEAD') && /^\/v1\/artifacts\/[^/]+$/.test(path);
}
