/**
 * What artifact-download.ts and http.ts need from an HTTP client, so the same
 * resume, retry and verification code runs over node:http (under Node) and
 * over fetch (under Bun, where node:http costs ~45 ms of CPU to load).
 * transport.ts picks one.
 */

/** A transport failure: the connection broke, stalled or never came up. Worth another try. */
export class TransportError extends Error {
  constructor(
    message: string,
    /** No answer came at all (connect refused or timed out). */
    readonly noAnswer = false,
    /** A pause the source asked for (Retry-After), in ms. */
    readonly retryAfterMs = 0,
  ) {
    super(message);
  }
}

/** One request: absolute URL, method, headers (lowercase names), optional body. */
export interface RequestSpec {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body?: string | undefined;
  /** A connection of its own, not from the pool (a report that must not queue behind downloads). */
  ownConnection?: boolean;
}

/** Limits on one request: getting a connection, then the answer's headers, and (JSON calls) the idle socket. */
export interface RequestLimits {
  connectMs: number;
  firstByteMs: number;
  idleMs?: number | undefined;
}

/** An answer whose headers are in; its body is read once, by read(), text() or discard(). */
export interface Answer {
  status: number;
  /** Lowercase names. */
  headers: Record<string, string | undefined>;
  /**
   * Hand every body chunk to onChunk until the body ends. Rejects with what
   * abort() was given, with what onChunk threw (the body is dropped then), or
   * with a plain Error when the connection breaks off (the caller says what broke).
   */
  read(onChunk: (chunk: Buffer) => void): Promise<void>;
  /** The body as text, at most about `limit` characters (the rest is dropped); rejects if it breaks off. */
  text(limit?: number): Promise<string>;
  /** Drop the body (a stall, wrong bytes): the read in progress rejects with `err`. */
  abort(err: Error): void;
  /** Not interested in the body. */
  discard(): void;
}

/** One pool of keep-alive connections (the server's, or one object-store origin's). */
export interface Pool {
  request(spec: RequestSpec, limits: RequestLimits): Promise<Answer>;
  close(): void;
}

export interface Transport {
  readonly name: 'node' | 'fetch';
  pool(protocol: 'http:' | 'https:', connections: number): Pool;
}

export function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
