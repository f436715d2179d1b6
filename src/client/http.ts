/**
 * Talking to a snapclone server: JSON calls and verified artifact downloads
 * over one keep-alive connection pool: node:http under Node, fetch under Bun
 * (transport.ts picks; each is in its own transport-*.ts).
 * Every artifact is hashed as it streams in and refused if its SHA-256 or size
 * differs from what the manifest promised; transport failures are retried and
 * resumed from the bytes received (artifact-download.ts), integrity failures
 * and missing artifacts are not: the server is told (best effort) so it
 * re-verifies its copy, and the clone fails. JSON calls wait out 429s; a 401
 * naming an upstream (a private repository) brings in the caller's upstream
 * credential (upstream-credential.ts).
 *
 * When resolve handed out object-store URLs (downloads.ts), an artifact comes
 * from its URL, over a keep-alive pool of its own per origin and with no
 * header of ours (the admin token never leaves for another origin). A URL that
 * is refused (403/404/410, any answer but 200), expired, or whose origin cannot
 * be reached falls back to the server for that artifact; wrong bytes do not:
 * they are an integrity failure, reported to the server, as from the server.
 * Each origin gets a pool of its own.
 */
import { SnapError, integrityError } from '../util/errors.js';
import type { Downloads } from './downloads.js';
import type { FirstAnswer } from './first-answer.js';
import { BadCopy, fetchResumable, retryAfterMs, Sink, timeoutsFromEnv, TransportError, type Artifact, type DownloadStats, type Source, type Timeouts } from './artifact-download.js';
import { loadTransport } from './transport.js';
import type { Answer, Pool } from './transport-types.js';
import { describeTarget, parseUpstreamTarget, upstreamCredential, type UpstreamCredential } from './upstream-credential.js';

export type { Artifact } from './artifact-download.js';

/** Idle limit on a JSON call's socket (a resolve that starts work answers 202 at once). */
const TIMEOUT_MS = 120_000;
/** 429: the longest Retry-After taken, and how many times a call is retried. */
const RATE_LIMIT_MAX_WAIT_MS = 30_000;
const RATE_LIMIT_RETRIES = 5;
/** A report of a bad artifact must not hold up the error the user is waiting for. */
const REPORT_TIMEOUT_MS = 2_000;

/** What a client tells the server about its copy of an artifact (POST /v1/artifacts/<sha256>/report). */
export type ArtifactProblem = 'digest-mismatch' | 'truncated' | 'missing';
/** Artifacts held in memory (manifest, table, archive chunks) are small by construction; refuse absurd claims. */
const MAX_IN_MEMORY = 1 << 30;

export class ServerClient {
  readonly base: string;
  private readonly url: URL;
  /** The server's pool, made on first use (the transport's modules load then). */
  private pool: Promise<Pool> | null = null;
  private readonly token: string | undefined;
  /**
   * Main-thread time spent hashing downloads (ms), when the first and last
   * artifact bytes arrived, artifacts fetched from object-store URLs, and those
   * that fell back to the server.
   */
  readonly stats: DownloadStats & { direct: number; fallbacks: number; rateLimited: number } = {
    verifyMs: 0,
    firstByteAt: 0,
    lastByteAt: 0,
    direct: 0,
    fallbacks: 0,
    retries: 0,
    resumes: 0,
    resumedBytes: 0,
    restarts: 0,
    rateLimited: 0,
  };
  /** Reports sent, by artifact, so each is reported once (and every failing download waits for it). */
  private readonly reports = new Map<string, Promise<void>>();
  /** Object-store URLs from resolve, if any; their pools by origin; origins that could not be reached. */
  private downloads: Downloads | null = null;
  private readonly directPools = new Map<string, Promise<Pool>>();
  private readonly unreachableOrigins = new Set<string>();
  private readonly connections: number;
  private readonly timeouts: Timeouts;
  /** Ask for the caller's upstream credential on a 401 that names an upstream (clones do). */
  private readonly askUpstream: boolean;
  /** The upstream credential, once one was asked for: sent with every request to the server from then on. */
  private upstream: UpstreamCredential | null = null;
  /** The signed query of the resolve answer, appended to every artifact GET and report (private repositories). */
  private signed: string | null = null;
  /** When it stops being good (ms since the epoch), as the resolve answer said; null: no query. */
  private signedExpiresAt: number | null = null;
  /** 429 waits end here: a clone's --timeout (ms since the epoch). */
  deadline = Infinity;

  constructor(serverUrl: string, opts: { connections?: number; token?: string | undefined; timeouts?: Timeouts; upstreamCredentials?: boolean } = {}) {
    let u: URL;
    try {
      u = new URL(serverUrl);
    } catch {
      throw new SnapError('usage', `invalid server URL ${JSON.stringify(withoutUserInfo(serverUrl))}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new SnapError('usage', 'server URL must be http:// or https://');
    // Credentials in the URL would never be sent (the token goes in a header)
    // and would be printed in every error message that names the server.
    if (u.username || u.password)
      throw new SnapError('usage', `the server URL must not hold a user name or password (${withoutUserInfo(serverUrl)}); the admin token goes in SNAPCLONE_TOKEN`);
    this.url = u;
    this.base = serverUrl.replace(/\/+$/, '');
    this.connections = opts.connections ?? 8;
    this.token = opts.token;
    this.timeouts = opts.timeouts ?? timeoutsFromEnv();
    this.askUpstream = opts.upstreamCredentials === true;
  }

  /** Append this query (`m=…&exp=…&sig=…`, checked by parseSigned) to every artifact GET and report. */
  useSigned(query: string | null, expiresAt: number | null = null): void {
    this.signed = query;
    this.signedExpiresAt = query ? expiresAt : null;
  }

  private signedSuffix(): string {
    return this.signed ? `?${this.signed}` : '';
  }

  /** Closed: no request starts any more (a download still retrying would open a new keep-alive socket that holds the process open). */
  private closed = false;

  async close(): Promise<void> {
    this.closed = true;
    for (const p of [this.pool, ...this.directPools.values()]) if (p) (await p).close();
  }

  /** A pool for this origin's protocol ('http:' | 'https:'). */
  private static newPool(protocol: string, connections: number): Promise<Pool> {
    return loadTransport().then((t) => t.pool(protocol === 'https:' ? 'https:' : 'http:', connections));
  }

  /** Fetch artifacts from these object-store URLs where they name one (null: everything from the server). */
  useDownloads(d: Downloads | null): void {
    this.downloads = d;
  }

  /** The object-store URL to try for an artifact, if there is one still worth trying. */
  private directUrl(digest: string): URL | null {
    const d = this.downloads;
    if (!d || Date.now() >= d.expiresAt) return null;
    const u = d.urls.get(digest);
    return u && !this.unreachableOrigins.has(u.origin) ? u : null;
  }

  /** GET an object-store URL: its own pool per origin, and no header of ours (no token, no admin headers). */
  private async sendDirect(u: URL, headers: Record<string, string>): Promise<Answer> {
    if (this.closed) throw new Error('the client was closed');
    let pool = this.directPools.get(u.origin);
    if (!pool) {
      pool = ServerClient.newPool(u.protocol, this.connections);
      this.directPools.set(u.origin, pool);
    }
    return (await pool).request({ url: u, method: 'GET', headers }, this.timeouts);
  }

  /**
   * A request to the server; the upstream credential goes with every one once
   * there is one. JSON calls wait up to 120 s for an answer (registering an
   * upstream may first ask it something); artifact GETs pass `artifact` and get
   * the first-byte limit.
   */
  private async send(method: string, path: string, headers: Record<string, string>, body?: string, opts: { timeoutMs?: number; ownConnection?: boolean; artifact?: boolean } = {}): Promise<Answer> {
    const prefix = this.url.pathname.replace(/\/+$/, '');
    if (this.closed) throw new Error('the client was closed');
    const all = this.upstream ? { ...headers, 'snapclone-upstream-authorization': this.upstream.header } : headers;
    const firstByteMs = opts.timeoutMs ?? (opts.artifact ? this.timeouts.firstByteMs : TIMEOUT_MS);
    const limits = { connectMs: Math.min(firstByteMs, this.timeouts.connectMs), firstByteMs, idleMs: opts.timeoutMs ?? TIMEOUT_MS };
    this.pool ??= ServerClient.newPool(this.url.protocol, this.connections);
    const pool = await this.pool;
    if (this.closed) throw new Error('the client was closed');
    return pool.request({ url: new URL(this.url.origin + prefix + path), method, headers: all, body, ownConnection: opts.ownConnection === true }, limits);
  }

  /**
   * JSON call; error statuses become SnapErrors carrying the server's code and
   * message. A 429 waits its Retry-After (at most 30 s, never past `deadline`)
   * and tries again, up to 5 times. A 401 naming an upstream (a private
   * repository) asks for the caller's upstream credential and tries once more
   * with it; git's helpers are told whether it worked. `waitOn429: false`: a
   * 429 fails at once (a lookup the caller can do without).
   */
  async json(
    method: string,
    path: string,
    body?: unknown,
    opts: { waitOn429?: boolean } = {},
  ): Promise<{ status: number; json: Record<string, unknown>; headers: Record<string, string | undefined> }> {
    for (let limited = 0, asked = false; ; ) {
      const r = await this.jsonOnce(method, path, body);
      if (r.status === 429 && limited < RATE_LIMIT_RETRIES && opts.waitOn429 !== false) {
        const wait = Math.min(RATE_LIMIT_MAX_WAIT_MS, retryAfterMs(r.headers['retry-after']) ?? 1000);
        if (Date.now() + wait <= this.deadline) {
          limited++;
          this.stats.rateLimited++;
          await new Promise((res) => setTimeout(res, wait));
          continue;
        }
      }
      if ((r.status === 401 || r.status === 403) && this.askUpstream) {
        const target = parseUpstreamTarget(r.json.upstream);
        if (r.status === 401 && target && !asked && !this.upstream) {
          asked = true;
          const cred = await upstreamCredential(target, this.base);
          if (!cred) throw new SnapError('unauthorized', `${serverError(r)}; no credential for ${describeTarget(target)}: set $SNAPCLONE_UPSTREAM_TOKEN or configure a git credential helper for ${target.host}`);
          this.upstream = cred;
          continue;
        }
        if (this.upstream && target) {
          if (r.status === 403) await this.upstream.reject();
          throw new SnapError('unauthorized', `${serverError(r)} (the credential from ${this.upstream.source} for ${describeTarget(target)} was refused)`);
        }
      }
      if (r.status >= 400) {
        const code = typeof r.json.code === 'string' ? r.json.code : 'internal';
        throw new SnapError(mapCode(code), serverError(r));
      }
      if (asked && this.upstream && !this.approved) {
        this.approved = true;
        await this.upstream.approve();
      }
      return r;
    }
  }

  private approved = false;

  /** The answer to a GET the CLI already sent (src/cli/first-request.ts), taken by the first JSON call; null once taken. */
  private first: FirstAnswer | null = null;

  /** Take `a` as the answer to the first JSON call if it is the same GET (else it is dropped and the call sent as usual). */
  answerFirst(a: FirstAnswer | null): void {
    this.first = a;
  }

  private async jsonOnce(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown>; headers: Record<string, string | undefined> }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const first = this.first;
    this.first = null;
    let res: { status: number; headers: Record<string, string | undefined> };
    let text = '';
    try {
      if (first && first.method === method && first.path === path && body === undefined) {
        const a = await first.answer;
        res = { status: a.status, headers: a.headers };
        text = a.text;
      } else {
        const r = await this.send(method, path, headers, body === undefined ? undefined : JSON.stringify(body));
        res = r;
        text = await r.text();
      }
    } catch (err) {
      throw new SnapError('unreachable', `cannot reach snapclone server at ${this.base}: ${(err as Error).message}`);
    }
    let json: Record<string, unknown> = {};
    try {
      json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      // Every answer is an object: `null`, a number or a list would make the callers' field reads throw TypeErrors.
      if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('not an object');
    } catch {
      // Not a snapclone server's answer: a proxy in trouble (5xx), or something that is not snapclone.
      throw new SnapError(res.status >= 500 ? 'unreachable' : 'invalid', `${this.base} answered ${res.status} with a body that is not a JSON object`);
    }
    return { status: res.status, json, headers: res.headers };
  }

  /**
   * Download one artifact, verifying size and SHA-256. With `toFile`, bytes are
   * written to that path as they arrive (bounded memory); otherwise returned.
   * Transport failures resume from the bytes received (artifact-download.ts):
   * from an object-store URL first, then from the server, which starts over
   * (each copy's bytes are verified on their own, so wrong bytes say whose they are).
   */
  async download(a: Artifact, opts: { toFile?: string; onBytes?: (n: number) => void } = {}): Promise<Buffer | null> {
    if (!opts.toFile && a.size > MAX_IN_MEMORY) throw new SnapError('invalid', `artifact ${a.digest.slice(0, 12)} is too large (${a.size} bytes) to hold in memory`);
    const sink = new Sink(a.size, opts.toFile);
    try {
      const url = this.directUrl(a.digest);
      if (url) {
        try {
          await this.fetchVerified(a, sink, this.directSource(a, url), opts.onBytes);
          this.stats.direct++;
          return sink.buffer;
        } catch (err) {
          // Refused, expired or unreachable: the server has the same bytes. Wrong bytes are not retried anywhere.
          if (!(err instanceof DirectUnavailable || err instanceof TransportError)) throw err;
          if (this.closed) throw new SnapError('unreachable', err.message);
          this.stats.fallbacks++;
          if (sink.offset > 0) opts.onBytes?.(-sink.offset);
          sink.reset();
        }
      }
      try {
        await this.fetchVerified(a, sink, this.serverSource(a), opts.onBytes);
      } catch (err) {
        if (err instanceof TransportError) throw new SnapError('unreachable', err.message);
        throw err;
      }
      return sink.buffer;
    } finally {
      sink.close();
    }
  }

  /** Fetch (resuming) and check the digest; wrong bytes are reported to the server and fail as integrity errors. */
  private async fetchVerified(a: Artifact, sink: Sink, source: Source, onBytes?: (n: number) => void): Promise<void> {
    const short = a.digest.slice(0, 12);
    try {
      await fetchResumable(a, sink, source, { stats: this.stats, timeouts: this.timeouts, onBytes, closed: () => this.closed });
      if (sink.hash.digest('hex') !== a.digest) throw new BadCopy('digest-mismatch', `${source.direct ? `${source.whose} of artifact` : 'artifact'} ${short} does not match its SHA-256 digest`);
    } catch (err) {
      if (!(err instanceof BadCopy)) throw err;
      await this.report(a.digest, err.problem);
      throw integrityError(err.message);
    }
  }

  /** The server's copy: GET /v1/artifacts/<digest>[?signed], with the upstream credential when there is one. */
  private serverSource(a: Artifact): Source {
    const short = a.digest.slice(0, 12);
    const source: Source = {
      whose: "the server's copy",
      direct: false,
      request: (headers) => this.send('GET', `/v1/artifacts/${a.digest}${this.signedSuffix()}`, headers, undefined, { artifact: true }).catch((err: Error) => {
        throw err instanceof TransportError ? new TransportError(`download of ${short} failed: ${err.message}`, err.noAnswer) : err;
      }),
      refused: async (res) => {
        const text = await res.text(65536).catch(() => ''); // the status is what matters
        const status = res.status;
        if (status === 404) {
          await this.report(a.digest, 'missing');
          return new SnapError('artifact-missing', `the server is missing artifact ${short} (it has been told; it rebuilds it on the next sync)`);
        }
        if (status === 401 || status === 403) {
          // Not a credential problem when the signed query ran out: the clone outlived it.
          if (this.signedExpiresAt !== null && Date.now() >= this.signedExpiresAt)
            return new SnapError('timeout', `artifact ${short}: the signed artifact URLs of this clone expired (it ran longer than the server's SNAPCLONE_URL_SECONDS); run the clone again`);
          return new SnapError('unauthorized', `artifact ${short}: ${serverMessage(text) ?? `server answered ${status}`}`);
        }
        if (status === 416) return new SnapError('invalid', `artifact ${short}: the server refused the byte range it was asked for (416)`);
        // 5xx, 429 and the like: the server is in trouble for now; worth another try.
        return new TransportError(`artifact ${short}: server answered ${status}`, false, Math.min(RATE_LIMIT_MAX_WAIT_MS, retryAfterMs(res.headers['retry-after']) ?? 0));
      },
    };
    return source;
  }

  /** An object-store URL's copy: no header of ours; any answer but 200 (or a fitting 206) sends the artifact to the server. */
  private directSource(a: Artifact, url: URL): Source {
    const short = a.digest.slice(0, 12);
    return {
      // Named in errors by origin only: the rest of a presigned URL is a credential.
      whose: `the object store's copy (at ${url.origin})`,
      direct: true,
      request: (headers) =>
        this.sendDirect(url, headers).catch((err: Error) => {
          // An origin that cannot be reached will not be for the next artifact either: do not wait on it again.
          if (err instanceof TransportError && err.noAnswer) this.unreachableOrigins.add(url.origin);
          throw new DirectUnavailable(`download of ${short} failed: ${err.message}`);
        }),
      refused: async (res) => {
        res.discard();
        return new DirectUnavailable(`artifact ${short}: ${url.origin} answered ${res.status}`);
      },
    };
  }

  /**
   * Tell the server its copy of an artifact looks bad, so it re-verifies and
   * quarantines it. Best effort: own connection, short timeout, errors ignored.
   */
  report(digest: string, problem: ArtifactProblem): Promise<void> {
    let sent = this.reports.get(digest);
    if (!sent) {
      sent = this.send('POST', `/v1/artifacts/${digest}/report${this.signedSuffix()}`, { 'content-type': 'application/json' }, JSON.stringify({ problem }), {
        timeoutMs: REPORT_TIMEOUT_MS,
        ownConnection: true,
      }).then(
        (res) => res.discard(),
        () => {}, // the clone's own error is what matters
      );
      this.reports.set(digest, sent);
    }
    return sent;
  }
}

/** An object-store URL did not give the artifact (refused, unreachable, broke off): the server is asked instead. */
class DirectUnavailable extends Error {}

const KNOWN_CODES: readonly string[] = ['usage', 'not-found', 'unreachable', 'build-failed', 'integrity', 'invalid', 'target-exists', 'conflict', 'unauthorized', 'timeout', 'artifact-missing', 'io', 'rate-limited', 'locked'];

/** A code the server sent, if this client knows it (else 'internal'). */
export function mapCode(code: string): SnapError['code'] {
  return (KNOWN_CODES.includes(code) ? code : 'internal') as SnapError['code'];
}

/**
 * The error for a failed server job. A job that carries the code of why it
 * failed (an unreachable upstream, a missing branch) fails with that code;
 * any other failure is build-failed.
 */
export function failedJobError(job: { error?: unknown; errorCode?: unknown }, what: string): SnapError {
  const why = typeof job.error === 'string' && job.error ? serverText(job.error) : 'unknown error';
  const code = typeof job.errorCode === 'string' ? mapCode(job.errorCode) : 'internal';
  return new SnapError(code === 'internal' ? 'build-failed' : code, `${what} failed: ${why}`);
}

/**
 * A server's error text as it may be printed: one line (the CLI prints messages as they are,
 * so line breaks or terminal escapes from a hostile server would reach the terminal), bounded.
 */
function serverText(text: string): string {
  const line = text.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]+/g, ' ').trim();
  return (line.length > 1000 ? `${line.slice(0, 1000)}...` : line) || 'no reason given';
}

/** A URL as it may be shown: anything between "//" and the last "@" before the path is elided. */
function withoutUserInfo(url: string): string {
  return url.replace(/^([^/]*\/\/)[^/?#]*@/, '$1***@');
}

/** The message of a JSON error answer. */
function serverError(r: { status: number; json: Record<string, unknown> }): string {
  return typeof r.json.error === 'string' && r.json.error ? serverText(r.json.error) : `server answered ${r.status}`;
}

/** The error text of a small (error) answer body, if it is snapclone JSON. */
function serverMessage(text: string): string | null {
  try {
    const j = JSON.parse(text) as { error?: unknown } | null;
    return typeof j?.error === 'string' && j.error ? serverText(j.error) : null;
  } catch {
    return null;
  }
}
