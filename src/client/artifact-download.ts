/**
 * One artifact download that survives a broken connection: bytes are hashed
 * and kept (in a file or a buffer) as they arrive, and a transport failure
 * (reset, cut, stall, refused connect) is retried with exponential backoff and
 * resumed with `Range: bytes=<offset>-` from the bytes already received, with
 * the same SHA-256 state. A 206 whose Content-Range starts there continues; a
 * 200 starts over (the source ignores ranges); anything else fails. Wrong
 * bytes are never retried: every byte still goes through the one hash, and
 * the digest is checked once the size is reached.
 *
 * Bounded waits: connecting, the first byte of an answer, and the silence
 * between two body chunks (a stalled body) each have a limit (Timeouts).
 */
import { createHasher, type Hasher } from '../util/digest.js';
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { SnapError } from '../util/errors.js';
import { seconds, TransportError, type Answer } from './transport-types.js';

export { TransportError };

export interface Artifact {
  digest: string;
  size: number;
}

/** Limits, in ms, on waiting for a connection, for an answer's headers, and between two body chunks. */
export interface Timeouts {
  connectMs: number;
  firstByteMs: number;
  stallMs: number;
}

export const DEFAULT_TIMEOUTS: Timeouts = { connectMs: 10_000, firstByteMs: 30_000, stallMs: 30_000 };

/** The timeouts, with SNAPCLONE_CONNECT_TIMEOUT_MS, SNAPCLONE_FIRST_BYTE_TIMEOUT_MS, SNAPCLONE_STALL_TIMEOUT_MS overriding the defaults. */
export function timeoutsFromEnv(env: NodeJS.ProcessEnv = process.env): Timeouts {
  const one = (name: string, dflt: number) => {
    const v = env[name];
    if (v === undefined || v === '') return dflt;
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 3_600_000) throw new SnapError('usage', `$${name} must be a number of milliseconds from 1 to 3600000, not ${JSON.stringify(v.slice(0, 40))}`);
    return Number(v);
  };
  return {
    connectMs: one('SNAPCLONE_CONNECT_TIMEOUT_MS', DEFAULT_TIMEOUTS.connectMs),
    firstByteMs: one('SNAPCLONE_FIRST_BYTE_TIMEOUT_MS', DEFAULT_TIMEOUTS.firstByteMs),
    stallMs: one('SNAPCLONE_STALL_TIMEOUT_MS', DEFAULT_TIMEOUTS.stallMs),
  };
}

/**
 * Retries of one download: attempts in a row that got no byte further (fewer
 * for an object-store URL, which has the server to fall back on), in all, and
 * the pause before each (doubling, capped).
 */
export const RETRY = { attemptsWithoutProgress: 5, directAttemptsWithoutProgress: 3, maxAttempts: 20, firstPauseMs: 200, maxPauseMs: 3_200 };

/** The bytes a source sent are not the artifact (found mid-body or at the end); never retried. */
export class BadCopy extends Error {
  constructor(
    readonly problem: 'digest-mismatch' | 'truncated',
    message: string,
  ) {
    super(message);
  }
}

/** Where a download's bytes go: a file (written as they arrive) or one buffer of the promised size. */
export class Sink {
  offset = 0;
  hash: Hasher = createHasher('sha256');
  private fd = -1;
  readonly buffer: Buffer | null;

  constructor(
    readonly size: number,
    readonly file: string | undefined,
  ) {
    this.buffer = file === undefined ? Buffer.allocUnsafe(size) : null;
  }

  write(chunk: Buffer): void {
    if (this.buffer) chunk.copy(this.buffer, this.offset);
    else {
      if (this.fd < 0) this.fd = openSync(this.file!, 'w', 0o444);
      writeAt(this.fd, chunk, this.offset, this.file!);
    }
    this.offset += chunk.length;
  }

  /** Start over: the source sent the whole artifact again. */
  reset(): void {
    if (this.fd >= 0) ftruncateSync(this.fd, 0);
    this.offset = 0;
    this.hash = createHasher('sha256');
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** Write all of `chunk` at `position`; a failure (ENOSPC...) names the file, which writeSync's error does not. */
function writeAt(fd: number, chunk: Buffer, position: number, path: string): void {
  try {
    for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off, chunk.length - off, position + off);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.path === undefined) e.path = path;
    throw err;
  }
}

/** One source of an artifact: the server, or an object-store URL. */
export interface Source {
  /** How errors name the copy: "the server's copy", "the object store's copy (at <origin>)". */
  whose: string;
  /** An object-store URL (not the server). */
  direct: boolean;
  /** Send the GET with these extra headers (Range). */
  request(headers: Record<string, string>): Promise<Answer>;
  /** The error for an answer that is neither 200 nor a fitting 206 (its body not yet read). */
  refused(res: Answer): Promise<Error>;
}

export interface DownloadStats {
  /** Main-thread time spent hashing (ms), first and last byte times. */
  verifyMs: number;
  firstByteAt: number;
  lastByteAt: number;
  /** Attempts after the first, requests that resumed with a Range, the bytes they did not fetch again, answers that started over. */
  retries: number;
  resumes: number;
  resumedBytes: number;
  restarts: number;
}

export interface FetchContext {
  stats: DownloadStats;
  timeouts: Timeouts;
  onBytes?: ((n: number) => void) | undefined;
  /** The client was closed: no new attempt starts. */
  closed(): boolean;
}

/**
 * Fetch `a` from `source` into `sink`, resuming after transport failures.
 * Resolves once `sink` holds `a.size` bytes (the digest is the caller's to
 * check); rejects with the last TransportError when retries run out, a
 * BadCopy for wrong bytes, or the source's error for a refusal.
 */
export async function fetchResumable(a: Artifact, sink: Sink, source: Source, ctx: FetchContext): Promise<void> {
  let stuck = 0;
  for (let attempt = 1; ; attempt++) {
    const before = sink.offset;
    try {
      await fetchOnce(a, sink, source, ctx);
      return;
    } catch (err) {
      if (!(err instanceof TransportError)) throw err;
      stuck = sink.offset > before ? 1 : stuck + 1;
      if (stuck >= (source.direct ? RETRY.directAttemptsWithoutProgress : RETRY.attemptsWithoutProgress) || attempt >= RETRY.maxAttempts || ctx.closed()) throw err;
      const pause = Math.max(err.retryAfterMs, Math.min(RETRY.maxPauseMs, RETRY.firstPauseMs * 2 ** (stuck - 1)));
      await new Promise((r) => setTimeout(r, pause));
      if (ctx.closed()) throw err;
      ctx.stats.retries++;
    }
  }
}

async function fetchOnce(a: Artifact, sink: Sink, source: Source, ctx: FetchContext): Promise<void> {
  const short = a.digest.slice(0, 12);
  const from = sink.offset;
  const res = await source.request(from > 0 ? { range: `bytes=${from}-` } : {});
  const length = res.headers['content-length'] === undefined ? null : Number(res.headers['content-length']);
  if (res.status === 206 && from > 0) {
    const want = `bytes ${from}-${a.size - 1}/${a.size}`;
    const got = res.headers['content-range'];
    if (got !== want || (length !== null && length !== a.size - from)) {
      res.abort(new Error('wrong range'));
      throw new SnapError('invalid', `${source.whose} of artifact ${short} answered a request for bytes ${from}- with ${JSON.stringify(String(got).slice(0, 80))}`);
    }
    ctx.stats.resumes++;
    ctx.stats.resumedBytes += from;
  } else if (res.status === 200) {
    // The whole artifact (again): what was received is dropped, and counted back.
    if (from > 0) {
      sink.reset();
      ctx.onBytes?.(-from);
      ctx.stats.restarts++;
    }
    // The copy has the wrong size: say so before reading a byte of it.
    if (length !== null && length !== a.size) {
      res.abort(new Error('wrong size'));
      throw new BadCopy(length < a.size ? 'truncated' : 'digest-mismatch', `${source.whose} of artifact ${short} is ${length < a.size ? 'truncated' : 'larger than the manifest says'}: ${length} of ${a.size} bytes`);
    }
  } else {
    throw await source.refused(res);
  }
  const stats = ctx.stats;
  // No chunk for stallMs: the body stalled; the connection goes and the download resumes.
  const stall = setTimeout(() => res.abort(new TransportError(`download of ${short} stalled: no data for ${seconds(ctx.timeouts.stallMs)}`)), ctx.timeouts.stallMs);
  function take(chunk: Buffer): void {
    stall.refresh();
    if (sink.offset + chunk.length > a.size) throw new BadCopy('digest-mismatch', `${source.whose} of artifact ${short} is larger than the ${a.size} bytes the manifest names`);
    const t = performance.now();
    if (!stats.firstByteAt) stats.firstByteAt = t;
    sink.hash.update(chunk);
    stats.verifyMs += performance.now() - t;
    sink.write(chunk);
    ctx.onBytes?.(chunk.length);
  }
  let ours: unknown = null; // what our own handling of a chunk threw (wrong bytes, a write error), as opposed to the transport
  try {
    await res.read((chunk) => {
      try {
        take(chunk);
      } catch (err) {
        ours = err;
        throw err;
      }
    });
  } catch (err) {
    if (err === ours || err instanceof TransportError || !(err instanceof Error)) throw err;
    throw new TransportError(`download of ${short} broke off after ${sink.offset} of ${a.size} bytes${err.message ? `: ${err.message}` : ''}`);
  } finally {
    clearTimeout(stall);
  }
  stats.lastByteAt = performance.now();
  // A response that ended cleanly but short is the source's whole copy: truncated.
  if (sink.offset !== a.size) throw new BadCopy('truncated', `${source.whose} of artifact ${short} is truncated: ${sink.offset} of ${a.size} bytes`);
}

/** Retry-After (delta-seconds or an HTTP date) in ms, or null when absent or unreadable. */
export function retryAfterMs(header: string | string[] | undefined, now = Date.now()): number | null {
  if (typeof header !== 'string') return null;
  const h = header.trim();
  if (/^\d+$/.test(h)) return Number(h) * 1000;
  const at = Date.parse(h);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}
