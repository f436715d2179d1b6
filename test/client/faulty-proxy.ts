/**
 * An HTTP proxy of our own in front of a real snapclone server, for client
 * fault tests: it forwards every request (Range headers included) and records
 * what it saw, and on command breaks artifact bodies after N bytes (a clean
 * close, a TCP reset, or a stall that never sends another byte), answers
 * requests itself (429, 401...), or rewrites resolve answers.
 */
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** pause: stop forwarding after afterBytes and call onFault (a test kills the server, then breaks the answer: what the server had sent beyond is lost with it). */
export type FaultKind = 'cut' | 'reset' | 'stall' | 'flip' | 'pause';

export interface Fault {
  kind: FaultKind;
  /** Body bytes sent before the fault. */
  afterBytes: number;
  /** How many artifact answers get the fault (then they pass); Infinity: all. */
  times: number;
  /** Only artifacts at least this large (so small ones pass untouched). */
  minSize?: number;
  /** Only this artifact (its digest): the faults hit it whatever order the client asks in. */
  digest?: string;
}

export interface Seen {
  method: string;
  path: string;
  query: string;
  range: string | undefined;
  upstreamAuth: string | undefined;
  status: number;
  /** Body bytes sent to the client. */
  sent: number;
  faulted: FaultKind | null;
  /** When it arrived (ms since the epoch). */
  at: number;
}

export interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export class FaultyProxy {
  url = '';
  readonly seen: Seen[] = [];
  fault: Fault | null = null;
  faults = 0;
  /** Called when a 'pause' fault happens, with what breaks the paused answer's connection. */
  onFault: ((breakConnection: () => void) => void) | null = null;
  /** Answer a request here instead of forwarding it (null: forward; 'hold': never answer). */
  intercept: (req: IncomingMessage, path: string) => Answer | 'hold' | null = () => null;
  /** Rewrite the JSON body of a forwarded 200 resolve answer. */
  rewriteResolve: ((json: Record<string, unknown>) => Record<string, unknown>) | null = null;
  private server!: Server;
  private readonly sockets = new Set<Socket>();

  static async start(target: string): Promise<FaultyProxy> {
    const p = new FaultyProxy();
    const t = new URL(target);
    p.server = createServer((req, res) => p.handle(t, req, res));
    p.server.on('connection', (s) => {
      p.sockets.add(s);
      s.on('close', () => p.sockets.delete(s));
    });
    await new Promise<void>((resolve) => p.server.listen(0, '127.0.0.1', resolve));
    p.url = `http://127.0.0.1:${(p.server.address() as AddressInfo).port}`;
    return p;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Artifact GETs seen, for one digest or all. */
  artifactGets(digest?: string): Seen[] {
    return this.seen.filter((s) => s.method === 'GET' && s.path.startsWith('/v1/artifacts/') && (digest === undefined || s.path === `/v1/artifacts/${digest}`));
  }

  private handle(target: URL, req: IncomingMessage, res: ServerResponse): void {
    const u = new URL(req.url ?? '/', 'http://x');
    const rec: Seen = {
      method: req.method ?? '',
      path: u.pathname,
      query: u.search.replace(/^\?/, ''),
      range: req.headers.range,
      upstreamAuth: req.headers['snapclone-upstream-authorization'] as string | undefined,
      status: 0,
      sent: 0,
      faulted: null,
      at: Date.now(),
    };
    this.seen.push(rec);
    const own = this.intercept(req, u.pathname);
    if (own === 'hold') return void req.resume();
    if (own) {
      req.resume();
      const text = JSON.stringify(own.body);
      rec.status = own.status;
      res.writeHead(own.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...(own.headers ?? {}) });
      return void res.end(text);
    }
    const headers: IncomingHttpHeaders = { ...req.headers, host: target.host };
    const up = request({ hostname: target.hostname, port: target.port, path: req.url, method: req.method, headers }, (ures) => {
      rec.status = ures.statusCode ?? 0;
      // The server died mid-answer: so does ours (the client sees a broken connection).
      ures.on('close', () => {
        if (!ures.complete && (!rec.faulted || rec.faulted === 'pause')) res.destroy();
      });
      const isArtifact = req.method === 'GET' && /^\/v1\/artifacts\/[0-9a-f]{64}$/.test(u.pathname) && (ures.statusCode === 200 || ures.statusCode === 206);
      const size = Number(ures.headers['content-length'] ?? 0);
      const f = this.fault;
      if (isArtifact && f && this.faults < f.times && size > f.afterBytes && size >= (f.minSize ?? 0) && (f.digest === undefined || u.pathname.endsWith(f.digest))) {
        this.faults++;
        rec.faulted = f.kind;
        return this.breakBody(f, ures, res, rec);
      }
      if (this.rewriteResolve && ures.statusCode === 200 && /\/resolve$/.test(u.pathname)) {
        const chunks: Buffer[] = [];
        ures.on('data', (c: Buffer) => chunks.push(c));
        ures.on('end', () => {
          const text = JSON.stringify(this.rewriteResolve!(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
          res.writeHead(200, { ...ures.headers, 'content-length': Buffer.byteLength(text) });
          rec.sent = Buffer.byteLength(text);
          res.end(text);
        });
        return;
      }
      res.writeHead(ures.statusCode ?? 502, ures.headers);
      ures.on('data', (c: Buffer) => (rec.sent += c.length));
      ures.pipe(res);
    });
    up.on('error', () => {
      rec.status = -1; // the server could not be reached
      res.destroy();
    });
    req.pipe(up);
  }

  /** Send `afterBytes` of the body, then break it as the fault says. */
  private breakBody(f: Fault, ures: IncomingMessage, res: ServerResponse, rec: Seen): void {
    res.writeHead(ures.statusCode ?? 200, ures.headers);
    let left = f.afterBytes;
    let broken = false;
    ures.on('data', (c: Buffer) => {
      if (broken) return;
      if (f.kind === 'flip') {
        // Same length, one byte changed past afterBytes: wrong bytes, not a broken connection.
        const out = Buffer.from(c);
        if (left >= 0 && left < out.length) out[left] = out[left]! ^ 0x20;
        left -= c.length;
        rec.sent += out.length;
        return void res.write(out);
      }
      if (c.length < left) {
        left -= c.length;
        rec.sent += c.length;
        return void res.write(c);
      }
      broken = true;
      const head = c.subarray(0, left);
      rec.sent += head.length;
      // Read on (and drop) rather than pause: a paused socket would not notice the server dying.
      if (f.kind === 'pause') {
        return void res.write(head, () => this.onFault?.(() => res.destroy()));
      }
      ures.destroy();
      res.write(head, () => {
        const s = res.socket;
        if (!s) return;
        if (f.kind === 'cut') s.destroy();
        else if (f.kind === 'reset') s.resetAndDestroy();
        // 'stall': nothing more is ever sent; the socket stays open until the client gives up.
      });
    });
    ures.on('end', () => {
      if (!broken) res.end();
    });
  }
}
