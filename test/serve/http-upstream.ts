/**
 * A smart-HTTP git upstream on loopback (git http-backend as CGI) whose behaviour a test
 * switches: 'serve' answers; 'stall' accepts every request and never answers; 'stall-fetch'
 * answers everything but a fetch's pack request (protocol v2 `command=fetch`: ls-remote goes
 * through, the fetch hangs); 'refuse' closes the listener, so connections are refused.
 */
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export type UpstreamMode = 'serve' | 'stall' | 'stall-fetch' | 'refuse';

export interface HttpUpstream {
  /** http:// URL of a repository under the project root (a directory name in it). */
  url(repo: string): string;
  setMode(mode: UpstreamMode): Promise<void>;
  /** Requests that were held unanswered (stall modes). */
  readonly stalled: number;
  close(): Promise<void>;
}

export async function startHttpUpstream(projectRoot: string): Promise<HttpUpstream> {
  let mode: UpstreamMode = 'serve';
  let stalled = 0;
  const sockets = new Set<Socket>();
  const held: ServerResponse[] = [];
  let port = 0;
  let server: Server;

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const body: Buffer[] = [];
    req.on('data', (b: Buffer) => body.push(b));
    req.on('end', () => {
      const input = Buffer.concat(body);
      if (mode === 'stall' || (mode === 'stall-fetch' && input.includes('command=fetch'))) {
        stalled++;
        held.push(res); // never answered
        return;
      }
      cgi(projectRoot, req, input, res);
    });
  };

  const listen = (): Promise<void> =>
    new Promise((resolve, reject) => {
      server = createServer(handle);
      server.on('connection', (s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        port = (server.address() as { port: number }).port;
        resolve();
      });
    });

  const shut = (): Promise<void> =>
    new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      held.length = 0;
      server.close(() => resolve());
    });

  await listen();
  return {
    url: (repo) => `http://127.0.0.1:${port}/${repo}`,
    async setMode(next) {
      if (next === mode) return;
      if (mode === 'refuse') await listen();
      else if (next === 'refuse') await shut();
      mode = next;
    },
    get stalled() {
      return stalled;
    },
    async close() {
      if (mode !== 'refuse') await shut();
    },
  };
}

/** One request through git http-backend (CGI): its headers (Status included) and body back. */
function cgi(projectRoot: string, req: IncomingMessage, input: Buffer, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  const child = spawn('git', ['http-backend'], {
    env: {
      ...process.env,
      GIT_PROJECT_ROOT: projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      REQUEST_METHOD: req.method ?? 'GET',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      CONTENT_LENGTH: String(input.length),
      HTTP_CONTENT_ENCODING: String(req.headers['content-encoding'] ?? ''),
      GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
      REMOTE_ADDR: '127.0.0.1',
    },
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  const out: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stdin.on('error', () => {});
  child.stdin.end(input);
  child.on('close', () => {
    const all = Buffer.concat(out);
    const sep = all.indexOf('\r\n\r\n');
    const headEnd = sep >= 0 ? sep : all.indexOf('\n\n');
    const head = all.subarray(0, headEnd).toString('latin1');
    const bodyStart = headEnd + (sep >= 0 ? 4 : 2);
    let status = 200;
    for (const line of head.split(/\r?\n/)) {
      const m = /^([^:]+):\s*(.*)$/.exec(line);
      if (!m) continue;
      if (m[1]!.toLowerCase() === 'status') status = Number(m[2]!.split(' ')[0]);
      else res.setHeader(m[1]!, m[2]!);
    }
    res.statusCode = status;
    res.end(all.subarray(bodyStart));
  });
}
