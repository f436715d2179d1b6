/**
 * A small HTTPS smart-HTTP git server for the benchmark: node:https in front of
 * the `git http-backend` CGI, with a self-signed certificate made at start-up by
 * the openssl CLI. cachew only proxies https:// upstreams, so its upstream is this
 * (clients and cachewd are told GIT_SSL_NO_VERIFY=1).
 *
 * The repository is served under both `<name>.git` and `<name>`, because cachew
 * strips `.git` from the path it asks the upstream for.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { freePort } from './lib.js';

export interface HttpsGit {
  /** https://127.0.0.1:PORT/<name>.git */
  url: string;
  stop: () => Promise<void>;
}

function selfSignedCert(dir: string): { key: Buffer; cert: Buffer } {
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { key: readFileSync(key), cert: readFileSync(cert) };
}

/** Run one request through `git http-backend`: the request body to its stdin, its CGI headers and body back. */
function cgi(root: string, req: IncomingMessage, res: ServerResponse): void {
  const u = new URL(req.url ?? '/', 'https://x');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    GIT_PROJECT_ROOT: root,
    GIT_HTTP_EXPORT_ALL: '1',
    REQUEST_METHOD: req.method ?? 'GET',
    PATH_INFO: decodeURIComponent(u.pathname),
    QUERY_STRING: u.search.slice(1),
    REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
    CONTENT_TYPE: req.headers['content-type'] ?? '',
  };
  if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
  if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = String(req.headers['content-encoding']);
  if (req.headers['git-protocol']) env.GIT_PROTOCOL = String(req.headers['git-protocol']);
  const p = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'ignore'] });
  req.pipe(p.stdin);
  p.stdin.on('error', () => {});
  let head = Buffer.alloc(0);
  let headersDone = false;
  p.stdout.on('data', (d: Buffer) => {
    if (headersDone) {
      if (!res.write(d)) (p.stdout.pause(), res.once('drain', () => p.stdout.resume()));
      return;
    }
    head = Buffer.concat([head, d]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    headersDone = true;
    let status = 200;
    for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
      const i = line.indexOf(':');
      if (i < 0) continue;
      const k = line.slice(0, i).trim();
      const v = line.slice(i + 1).trim();
      if (k.toLowerCase() === 'status') status = parseInt(v, 10) || 200;
      else res.setHeader(k, v);
    }
    res.writeHead(status);
    res.write(head.subarray(end + 4));
  });
  p.on('close', () => {
    if (!headersDone) res.writeHead(502).end();
    else res.end();
  });
}

export async function startHttpsGit(repoPath: string, name: string, dir: string): Promise<HttpsGit> {
  const root = join(dir, 'root');
  mkdirSync(root, { recursive: true });
  symlinkSync(repoPath, join(root, `${name}.git`));
  symlinkSync(repoPath, join(root, name));
  const { key, cert } = selfSignedCert(dir);
  const port = await freePort();
  const server: Server = createServer({ key, cert }, (req, res) => cgi(root, req, res));
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `https://127.0.0.1:${port}/${name}.git`,
    stop: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}
