/**
 * Two real HTTP servers for tests of downloads straight from the object store
 * (issue 8): a Bucket standing in for S3 (objects by path, presigned-looking
 * URLs, every request and its headers recorded, told to refuse or corrupt
 * some objects), and a PresigningServer speaking the snapclone endpoints a
 * clone uses, whose resolve answers carry `downloads` pointing at the bucket.
 * Clonepacks are real (harvested from a real server by fresh-server.ts).
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { canonicalJson, type Manifest } from '../../src/clonepack/manifest.js';
import { sha256 } from './fresh-server.js';

export interface SeenRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function stop(server: Server): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

function record(list: SeenRequest[], method: string | undefined, rawUrl: string | undefined, headers: IncomingHttpHeaders): URL {
  const url = new URL(rawUrl ?? '/', 'http://x');
  list.push({ method: method ?? '', path: url.pathname, query: url.searchParams, headers });
  return url;
}

const BUCKET_PREFIX = '/snap-bucket/sha256/';

/** An object store: GET <prefix><digest>?X-Amz-Signature=... serves the object; no signature is 403, as S3 does. */
export class Bucket {
  url = '';
  readonly objects = new Map<string, Buffer>();
  readonly requests: SeenRequest[] = [];
  /** Digests answered with this status instead of their bytes. */
  readonly refuse = new Map<string, number>();
  /** Digests whose body breaks off halfway (the connection is destroyed after the first half). */
  readonly cut = new Set<string>();
  private server!: Server;

  static async start(): Promise<Bucket> {
    const b = new Bucket();
    b.server = createServer((req, res) => {
      req.resume();
      const url = record(b.requests, req.method, req.url, req.headers);
      const digest = url.pathname.startsWith(BUCKET_PREFIX) ? url.pathname.slice(BUCKET_PREFIX.length) : '';
      const body = b.objects.get(digest);
      const status = !url.searchParams.get('X-Amz-Signature') ? 403 : (b.refuse.get(digest) ?? (body ? 200 : 404));
      if (status !== 200 || !body) {
        res.writeHead(status, { 'content-type': 'application/xml' });
        return void res.end(`<Error><Code>${status === 403 ? 'AccessDenied' : 'NoSuchKey'}</Code></Error>`);
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      if (!b.cut.has(digest)) return void res.end(body);
      res.write(body.subarray(0, body.length >> 1), () => res.destroy());
    });
    b.url = await listen(b.server);
    return b;
  }

  close(): Promise<void> {
    return stop(this.server);
  }

  /** A presigned-looking URL of an object (stored or not). */
  urlOf(digest: string): string {
    return `${this.url}${BUCKET_PREFIX}${digest}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=300&X-Amz-Signature=${'5'.repeat(64)}`;
  }

  /** GETs of an object. */
  hits(digest: string): number {
    return this.requests.filter((r) => r.method === 'GET' && r.path === BUCKET_PREFIX + digest).length;
  }
}

export interface Report {
  digest: string;
  body: unknown;
}

/** A snapclone server whose resolve answer is `answer(request)`, serving its artifacts and taking reports. */
export class PresigningServer {
  url = '';
  readonly artifacts = new Map<string, Buffer>();
  readonly requests: SeenRequest[] = [];
  readonly reports: Report[] = [];
  /** The 200 body of resolve; the request is there to see its query (proxy=1). */
  answer: (req: SeenRequest) => Record<string, unknown> = () => ({});
  private server!: Server;

  static async start(): Promise<PresigningServer> {
    const s = new PresigningServer();
    s.server = createServer((req, res) => {
      const url = record(s.requests, req.method, req.url, req.headers);
      const send = (status: number, body: unknown) => {
        const text = JSON.stringify(body);
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      };
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (text += c));
      req.on('end', () => {
        let m = /^\/v1\/artifacts\/([0-9a-f]{64})$/.exec(url.pathname);
        if (m && req.method === 'GET') {
          const a = s.artifacts.get(m[1]!);
          if (!a) return send(404, { error: 'no artifact', code: 'artifact-missing' });
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': a.length });
          return void res.end(a);
        }
        m = /^\/v1\/artifacts\/([0-9a-f]{64})\/report$/.exec(url.pathname);
        if (m && req.method === 'POST') {
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // kept as text: the test then fails on it
          }
          s.reports.push({ digest: m[1]!, body });
          return send(202, { status: 'checking' });
        }
        if (/^\/v1\/repos\/[^/]+\/resolve$/.test(url.pathname)) return send(200, s.answer(s.requests[s.requests.length - 1]!));
        send(404, { error: 'no route', code: 'not-found' });
      });
    });
    s.url = await listen(s.server);
    return s;
  }

  close(): Promise<void> {
    return stop(this.server);
  }

  /** Serve a manifest and return the digest and size resolve names it by. */
  publish(m: Manifest): { digest: string; size: number } {
    const bytes = Buffer.from(canonicalJson(m), 'utf8');
    const digest = sha256(bytes);
    this.artifacts.set(digest, bytes);
    return { digest, size: bytes.length };
  }

  /** GETs of an artifact through the server. */
  hits(digest: string): number {
    return this.requests.filter((r) => r.method === 'GET' && r.path === `/v1/artifacts/${digest}`).length;
  }

  /** GETs of any artifact through the server. */
  artifactGets(): number {
    return this.requests.filter((r) => r.method === 'GET' && r.path.startsWith('/v1/artifacts/')).length;
  }
}
