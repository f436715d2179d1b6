/**
 * The fetch transport (under Bun): fetch is native there and costs ~1 ms to
 * first use, where node:http is a JavaScript layer that takes ~45 ms of CPU
 * to load, a third of a small clone. Bun's fetch keeps connections alive and
 * reuses them; the pool caps requests in flight at `connections`, as
 * http.Agent's maxSockets does.
 *
 * fetch does not say when its connection is up, so the connect and first-byte
 * limits cannot be told apart: an origin that has not answered yet gets both
 * (connectMs + firstByteMs) for its answer's headers, later requests firstByteMs.
 * A refused or unresolvable connect fails at once, as under node:http.
 */
import { seconds, TransportError, type Answer, type Pool, type Transport } from './transport-types.js';

/** Origins that have answered in this process: their connections are known to come up. */
const answered = new Set<string>();

/** Error codes (Bun's and Node's) of a connect that never happened: no answer came. */
const NO_CONNECTION = /refused|ENOTFOUND|EAI_AGAIN|FailedToOpenSocket|Unable to connect|ECONNREFUSED|EHOSTUNREACH|ENETUNREACH/i;

export const fetchTransport: Transport = {
  name: 'fetch',
  pool(_protocol, connections) {
    const slots = new Slots(connections);
    const live = new Set<AbortController>();
    let closed = false;
    return {
      async request(spec, limits) {
        if (!spec.ownConnection) await slots.take();
        let held = !spec.ownConnection;
        const release = () => {
          if (held) slots.give();
          held = false;
        };
        const ac = new AbortController();
        live.add(ac);
        const done = () => {
          live.delete(ac);
          release();
        };
        if (closed) {
          done();
          throw new TransportError('the client was closed', true);
        }
        const origin = spec.url.origin;
        const waitMs = answered.has(origin) ? limits.firstByteMs : limits.connectMs + limits.firstByteMs;
        const timer = setTimeout(() => ac.abort(new TransportError(answered.has(origin) ? `no answer within ${seconds(waitMs)}` : `could not connect or no answer within ${seconds(waitMs)}`, true)), waitMs);
        let res: Response;
        try {
          res = await fetch(spec.url, {
            method: spec.method,
            headers: spec.headers,
            ...(spec.body !== undefined ? { body: spec.body } : {}),
            redirect: 'manual', // as node:http: a redirect is an answer, not followed
            signal: ac.signal,
            // Bun: the bytes as sent (a Content-Encoding would break the digest and the Range offsets); a connection of its own for reports.
            ...({ decompress: false, keepalive: !spec.ownConnection } as object),
          });
        } catch (err) {
          clearTimeout(timer);
          done();
          const reason = ac.signal.aborted ? ac.signal.reason : err;
          if (reason instanceof TransportError) throw reason;
          const e = reason as Error & { code?: string };
          throw new TransportError(e.message || String(e), NO_CONNECTION.test(`${e.code ?? ''} ${e.message}`));
        }
        clearTimeout(timer);
        answered.add(origin);
        return fetchAnswer(res, ac, done, limits.idleMs);
      },
      close() {
        closed = true;
        for (const ac of live) ac.abort(new TransportError('the client was closed'));
        live.clear();
      },
    } satisfies Pool;
  },
};

function fetchAnswer(res: Response, ac: AbortController, done: () => void, idleMs: number | undefined): Answer {
  const headers: Record<string, string | undefined> = {};
  res.headers.forEach((v, k) => (headers[k.toLowerCase()] = v));
  let used = false;
  const body = async (onChunk: (chunk: Buffer) => void): Promise<void> => {
    if (used) throw new Error('the body was read already');
    used = true;
    // A JSON answer's body gets the idle limit its headers had (node:http's socket timeout covers both).
    const idle = idleMs === undefined ? undefined : setTimeout(() => ac.abort(new TransportError(`no answer within ${seconds(idleMs)}`, true)), idleMs);
    try {
      if (!res.body) return;
      const reader = res.body.getReader();
      for (;;) {
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await reader.read();
        } catch (err) {
          throw ac.signal.aborted ? (ac.signal.reason as Error) : err instanceof Error ? err : new Error(String(err));
        }
        if (r.done) return;
        if (idle) idle.refresh();
        const v = r.value;
        try {
          onChunk(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
        } catch (err) {
          ac.abort(err);
          throw err;
        }
      }
    } finally {
      clearTimeout(idle);
      done();
    }
  };
  return {
    status: res.status,
    headers,
    read: body,
    async text(limit = Infinity) {
      const parts: Buffer[] = [];
      let n = 0;
      const enough = new Error('enough');
      try {
        await body((c) => {
          parts.push(c);
          n += c.length;
          if (n > limit * 4) throw enough; // a UTF-8 character is at most 4 bytes
        });
      } catch (err) {
        if (err !== enough) throw err;
      }
      return Buffer.concat(parts).toString('utf8');
    },
    abort(err) {
      ac.abort(err);
      if (!used) done();
      used = true;
    },
    discard() {
      if (used) return;
      // An error answer's body is small: reading it keeps the connection for the next request.
      body(() => {}).catch(() => {});
    },
  };
}

/** At most `n` requests in flight; the next waiter gets a freed place. */
class Slots {
  private readonly waiting: (() => void)[] = [];
  constructor(private free: number) {}
  async take(): Promise<void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.waiting.push(r));
  }
  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}
