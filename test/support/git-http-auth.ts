/**
 * A real smart-HTTP git server with Basic auth, for the access-control tests: node:http in front
 * of `git http-backend` run as CGI. Repositories under `root` are served at /<path>; with
 * `users` set, every request needs `Authorization: Basic` of one of them (401 without, 403 with
 * a wrong one), as a private repository on a forge. Counts info/refs requests (the probes and
 * git's own first request) so tests can tell a cached answer from a new probe.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';

export interface GitHttpServer {
  url: string;
  /** info/refs requests so far, by whether they were let through. */
  infoRefs: { allowed: number; refused: number };
  /** Every Authorization header value seen (so a test can check what the server forwarded). */
  authorizations: string[];
  /** Make every request hang (no answer) until set false: an upstream that times out. */
  hang: boolean;
  close(): Promise<void>;
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

export async function startGitHttpServer(root: string, opts: { users?: Record<string, string>; publicPaths?: string[] } = {}): Promise<GitHttpServer> {
  const allowed = new Set(Object.entries(opts.users ?? {}).map(([u, p]) => basic(u, p)));
  const held: ServerResponse[] = [];
  const state: GitHttpServer = {
    url: '',
    infoRefs: { allowed: 0, refused: 0 },
    authorizations: [],
    hang: false,
    close: async () => {
      for (const r of held) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((req, res) => {
    if (state.hang) return void held.push(res);
    const url = new URL(req.url ?? '/', 'http://x');
    const isInfoRefs = url.pathname.endsWith('/info/refs');
    const auth = req.headers.authorization;
    if (auth) state.authorizations.push(auth);
    const open = !opts.users || (opts.publicPaths ?? []).some((p) => url.pathname.startsWith(`/${p}/`));
    if (!open) {
      if (!auth) {
        if (isInfoRefs) state.infoRefs.refused++;
        res.writeHead(401, { 'www-authenticate': 'Basic realm="test"', 'content-type': 'text/plain' });
        return void res.end('authentication required\n');
      }
      if (!allowed.has(auth)) {
        if (isInfoRefs) state.infoRefs.refused++;
        res.writeHead(403, { 'content-type': 'text/plain' });
        return void res.end('forbidden\n');
      }
    }
    if (isInfoRefs) state.infoRefs.allowed++;
    runBackend(root, req, res, url);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

/** Run git http-backend for one request: CGI environment in, CGI header block and body out. */
function runBackend(root: string, req: IncomingMessage, res: ServerResponse, url: URL): void {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    GIT_PROJECT_ROOT: root,
    GIT_HTTP_EXPORT_ALL: '1',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    PATH_INFO: decodeURIComponent(url.pathname),
    QUERY_STRING: url.search.replace(/^\?/, ''),
    REQUEST_METHOD: req.method ?? 'GET',
    CONTENT_TYPE: req.headers['content-type'] ?? '',
    REMOTE_ADDR: '127.0.0.1',
    REMOTE_USER: 'test',
    ...(req.headers['git-protocol'] ? { GIT_PROTOCOL: String(req.headers['git-protocol']) } : {}),
    ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: String(req.headers['content-encoding']) } : {}),
  };
  const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  req.pipe(child.stdin);
  child.stdin.on('error', () => {});
  child.stderr.resume();
  let head = Buffer.alloc(0);
  let headerDone = false;
  child.stdout.on('data', (chunk: Buffer) => {
    if (headerDone) return void res.write(chunk);
    head = Buffer.concat([head, chunk]);
    let end = head.indexOf('\r\n\r\n');
    let sep = 4;
    if (end < 0) {
      end = head.indexOf('\n\n');
      sep = 2;
    }
    if (end < 0) return;
    headerDone = true;
    let status = 200;
    const headers: Record<string, string> = {};
    for (const line of head.subarray(0, end).toString('latin1').split(/\r?\n/)) {
      const i = line.indexOf(':');
      if (i < 0) continue;
      const k = line.slice(0, i).trim().toLowerCase();
      const v = line.slice(i + 1).trim();
      if (k === 'status') status = Number(v.split(' ')[0]);
      else headers[k] = v;
    }
    res.writeHead(status, headers);
    res.write(head.subarray(end + sep));
  });
  child.on('close', () => {
    if (!headerDone) {
      res.writeHead(500);
    }
    res.end();
  });
}
