/**
 * Talking to a snapclone server: JSON calls and verified artifact downloads
 * over one keep-alive connection pool. node:http is used rather than undici:
 * it is part of Node's startup snapshot (undici costs ~60 ms to load on the
 * 2-core reference machine, more than a whole small clone) and measured the
 * lowest CPU per GiB of the clients we tried (docs/BENCHMARKS.md).
 * Every artifact is hashed as it streams in and refused if its SHA-256 or size
 * differs from what the manifest promised; transport failures are retried,
 * integrity failures and missing artifacts are not: the server is told (best
 * effort) so it re-verifies its copy, and the clone fails.
 *
 * When resolve handed out object-store URLs (downloads.ts), an artifact comes
 * from its URL, over a keep-alive pool of its own per origin and with no
 * header of ours (the admin token never leaves for another origin). A URL that
 * is refused (403/404/410, any answer but 200), expired, or whose origin cannot
 * be reached falls back to the server for that artifact; wrong bytes do not:
 * they are an integrity failure, reported to the server, as from the server.
 * node:http here too rather than undici: undici is a dev dependency only, and
 * one http.Agent per origin gives the same separate pools.
 */
import http from 'node:http';
import https from 'node:https';
import { createHash } from 'node:crypto';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { SnapError, integrityError } from '../util/errors.js';
import type { Downloads } from './downloads.js';

export interface Artifact {
  digest: string;
  size: number;
}

const TIMEOUT_MS = 120_000;
/** A report of a bad artifact must not hold up the error the user is waiting for. */
const REPORT_TIMEOUT_MS = 2_000;

/** What a client tells the server about its copy of an artifact (POST /v1/artifacts/<sha256>/report). */
export type ArtifactProblem = 'digest-mismatch' | 'truncated' | 'missing';
/** Artifacts held in memory (manifest, table, archive chunks) are small by construction; refuse absurd claims. */
const MAX_IN_MEMORY = 1 << 30;

export class ServerClient {
  readonly base: string;
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly token: string | undefined;
  /**
   * Main-thread time spent hashing downloads (ms), when the first and last
   * artifact bytes arrived, artifacts fetched from object-store URLs, and those
   * that fell back to the server.
   */
  readonly stats = { verifyMs: 0, firstByteAt: 0, lastByteAt: 0, direct: 0, fallbacks: 0 };
  /** Reports sent, by artifact, so each is reported once (and every failing download waits for it). */
  private readonly reports = new Map<string, Promise<void>>();
  /** Object-store URLs from resolve, if any; their pools by origin; origins that could not be reached. */
  private downloads: Downloads | null = null;
  private readonly directAgents = new Map<string, http.Agent>();
  private readonly unreachableOrigins = new Set<string>();
  private readonly connections: number;

  constructor(serverUrl: string, opts: { connections?: number; token?: string | undefined } = {}) {
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
    const Agent = u.protocol === 'https:' ? https.Agent : http.Agent;
    this.connections = opts.connections ?? 8;
    this.agent = new Agent({ keepAlive: true, maxSockets: this.connections, scheduling: 'lifo' });
    this.token = opts.token;
  }

  /** Closed: no request starts any more (a download still retrying would open a new keep-alive socket that holds the process open). */
  private closed = false;

  async close(): Promise<void> {
    this.closed = true;
    this.agent.destroy();
    for (const a of this.directAgents.values()) a.destroy();
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
  private sendDirect(u: URL): Promise<http.IncomingMessage> {
    if (this.closed) return Promise.reject(new Error('the client was closed'));
    const https_ = u.protocol === 'https:';
    let agent = this.directAgents.get(u.origin);
    if (!agent) {
      agent = new (https_ ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: this.connections, scheduling: 'lifo' });
      this.directAgents.set(u.origin, agent);
    }
    return new Promise((resolve, reject) => {
      const req = (https_ ? https : http).request(
        // URL.hostname keeps an IPv6 address's brackets; the socket wants it bare (node brackets the Host header itself).
        { protocol: u.protocol, hostname: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: u.port, path: u.pathname + u.search, method: 'GET', headers: {}, agent },
        resolve,
      );
      req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
      req.on('error', reject);
      req.end();
    });
  }

  private send(method: string, path: string, headers: Record<string, string>, body?: string, opts: { timeoutMs?: number; ownConnection?: boolean } = {}): Promise<http.IncomingMessage> {
    const mod = this.url.protocol === 'https:' ? https : http;
    const prefix = this.url.pathname.replace(/\/+$/, '');
    const timeoutMs = opts.timeoutMs ?? TIMEOUT_MS;
    if (this.closed) return Promise.reject(new Error('the client was closed'));
    return new Promise((resolve, reject) => {
      const req = mod.request(
        { protocol: this.url.protocol, hostname: this.url.hostname, port: this.url.port, path: prefix + path, method, headers, agent: opts.ownConnection ? false : this.agent },
        resolve,
      );
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** JSON call; error statuses become SnapErrors carrying the server's code and message. */
  async json(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown>; headers: http.IncomingHttpHeaders }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let res: http.IncomingMessage;
    let text = '';
    try {
      res = await this.send(method, path, headers, body === undefined ? undefined : JSON.stringify(body));
      res.setEncoding('utf8');
      for await (const chunk of res) text += chunk as string;
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
      throw new SnapError((res.statusCode ?? 0) >= 500 ? 'unreachable' : 'invalid', `${this.base} answered ${res.statusCode} with a body that is not a JSON object`);
    }
    const status = res.statusCode ?? 0;
    if (status >= 400) {
      const code = typeof json.code === 'string' ? json.code : 'internal';
      throw new SnapError(mapCode(code), typeof json.error === 'string' && json.error ? serverText(json.error) : `server answered ${status}`);
    }
    return { status, json, headers: res.headers };
  }

  /**
   * Download one artifact, verifying size and SHA-256. With `toFile`, bytes are
   * written to that path as they arrive (bounded memory); otherwise returned.
   */
  async download(a: Artifact, opts: { toFile?: string; onBytes?: (n: number) => void } = {}): Promise<Buffer | null> {
    const url = this.directUrl(a.digest);
    if (url) {
      try {
        const got = await this.downloadOnce(a, opts, url);
        this.stats.direct++;
        return got;
      } catch (err) {
        // Refused, expired or unreachable: the server has the same bytes. Wrong bytes are not retried anywhere.
        if (!(err instanceof DirectUnavailable)) throw err;
        if (this.closed) throw new SnapError('unreachable', err.message);
        this.stats.fallbacks++;
      }
    }
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.downloadOnce(a, opts);
      } catch (err) {
        // Only transport failures are worth another try; wrong bytes, a missing
        // artifact or a local file system error would fail the same way again.
        const retryable = err instanceof SnapError && err.code === 'unreachable' && !this.closed;
        if (!retryable || attempt >= 3) throw err;
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  }

  /** One GET of an artifact, from the server or (with `direct`) from an object-store URL. */
  private async downloadOnce(a: Artifact, opts: { toFile?: string; onBytes?: (n: number) => void }, direct?: URL): Promise<Buffer | null> {
    if (opts.toFile) rmSync(opts.toFile, { force: true }); // a retry starts over
    const short = a.digest.slice(0, 12);
    // Named in errors by origin only: the rest of a presigned URL is a credential.
    const whose = direct ? `the object store's copy (at ${direct.origin})` : "the server's copy";
    const transport = (message: string) => (direct ? new DirectUnavailable(message) : new SnapError('unreachable', message));
    let res: http.IncomingMessage;
    try {
      res = direct ? await this.sendDirect(direct) : await this.send('GET', `/v1/artifacts/${a.digest}`, {});
    } catch (err) {
      // An origin that cannot be reached will not be for the next artifact either: do not wait on it again.
      if (direct) this.unreachableOrigins.add(direct.origin);
      throw transport(`download of ${short} failed: ${(err as Error).message}`);
    }
    if (direct && res.statusCode !== 200) {
      res.resume();
      throw new DirectUnavailable(`artifact ${short}: ${direct.origin} answered ${res.statusCode}`);
    }
    if (res.statusCode !== 200) {
      res.resume();
      if (res.statusCode === 404) {
        await this.report(a.digest, 'missing');
        throw new SnapError('artifact-missing', `the server is missing artifact ${short} (it has been told; it rebuilds it on the next sync)`);
      }
      throw new SnapError('unreachable', `artifact ${short}: server answered ${res.statusCode}`);
    }
    // The server's copy has the wrong size: say so before reading a byte of it.
    const announced = res.headers['content-length'] === undefined ? null : Number(res.headers['content-length']);
    if (announced !== null && announced !== a.size) {
      res.destroy();
      await this.report(a.digest, announced < a.size ? 'truncated' : 'digest-mismatch');
      throw integrityError(`${whose} of artifact ${short} is ${announced < a.size ? 'truncated' : 'larger than the manifest says'}: ${announced} of ${a.size} bytes`);
    }
    const hash = createHash('sha256');
    let got = 0;
    const fd = opts.toFile ? openSync(opts.toFile, 'w', 0o444) : -1;
    if (fd < 0 && a.size > MAX_IN_MEMORY) {
      res.destroy();
      throw new SnapError('invalid', `artifact ${short} is too large (${a.size} bytes) to hold in memory`);
    }
    // In memory, one buffer of the promised size: no per-chunk copies to concatenate.
    const buf = fd < 0 ? Buffer.allocUnsafe(a.size) : null;
    const stats = this.stats;
    try {
      // 'data' events rather than for-await: a promise per 64 KiB chunk costs ~10-40% of throughput.
      await new Promise<void>((resolve, reject) => {
        res.on('data', (chunk: Buffer) => {
          try {
            if (got + chunk.length > a.size) throw new BadCopy('digest-mismatch', `${whose} of artifact ${short} is larger than the ${a.size} bytes the manifest names`);
            const t = performance.now();
            if (!stats.firstByteAt) stats.firstByteAt = t;
            hash.update(chunk);
            stats.verifyMs += performance.now() - t;
            if (buf) chunk.copy(buf, got);
            else writeChunk(fd, chunk, opts.toFile!);
            got += chunk.length;
            opts.onBytes?.(chunk.length);
          } catch (err) {
            res.destroy();
            reject(err);
          }
        });
        res.on('end', resolve);
        res.on('error', (err) => reject(transport(`download of ${short} broke off: ${err.message}`)));
        res.on('close', () => reject(transport(`download of ${short} broke off after ${got} of ${a.size} bytes`)));
      });
    } catch (err) {
      if (!(err instanceof BadCopy)) throw err;
      await this.report(a.digest, err.problem);
      throw integrityError(err.message);
    } finally {
      if (fd >= 0) closeSync(fd);
    }
    this.stats.lastByteAt = performance.now();
    // A response that ended cleanly but short is the server's whole copy: truncated.
    if (got !== a.size) {
      await this.report(a.digest, 'truncated');
      throw integrityError(`${whose} of artifact ${short} is truncated: ${got} of ${a.size} bytes`);
    }
    if (hash.digest('hex') !== a.digest) {
      await this.report(a.digest, 'digest-mismatch');
      throw integrityError(`${direct ? `${whose} of artifact` : 'artifact'} ${short} does not match its SHA-256 digest`);
    }
    return buf;
  }

  /**
   * Tell the server its copy of an artifact looks bad, so it re-verifies and
   * quarantines it. Best effort: own connection, short timeout, errors ignored.
   */
  report(digest: string, problem: ArtifactProblem): Promise<void> {
    let sent = this.reports.get(digest);
    if (!sent) {
      sent = this.send('POST', `/v1/artifacts/${digest}/report`, { 'content-type': 'application/json' }, JSON.stringify({ problem }), {
        timeoutMs: REPORT_TIMEOUT_MS,
        ownConnection: true,
      }).then(
        (res) => void res.resume(),
        () => {}, // the clone's own error is what matters
      );
      this.reports.set(digest, sent);
    }
    return sent;
  }
}

/** An object-store URL did not give the artifact (refused, unreachable, broke off): the server is asked instead. */
class DirectUnavailable extends Error {}

/** The bytes a server sent are not the artifact (found mid-body); reported once the body is abandoned. */
class BadCopy extends Error {
  constructor(
    readonly problem: ArtifactProblem,
    message: string,
  ) {
    super(message);
  }
}

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

/** Write all of `chunk`; a failure (ENOSPC...) names the file, which writeSync's error does not. */
function writeChunk(fd: number, chunk: Buffer, path: string): void {
  try {
    for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.path === undefined) e.path = path;
    throw err;
  }
}
