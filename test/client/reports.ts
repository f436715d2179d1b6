/**
 * The bad-artifact reports (POST /v1/artifacts/<sha256>/report, CONTRACTS.md)
 * a client sends to a FakeServer, with their bodies: the FakeServer itself
 * discards request bodies, so its request listener is wrapped.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FakeServer } from './fake-server.js';

export interface Report {
  digest: string;
  body: unknown;
}

export function captureReports(fake: FakeServer): Report[] {
  const reports: Report[] = [];
  const http = fake['server'] as Server;
  const inner = http.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  http.removeAllListeners('request');
  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const m = /^\/v1\/artifacts\/([0-9a-f]{64})\/report$/.exec(req.url ?? '');
    if (req.method !== 'POST' || !m) return inner.forEach((h) => h(req, res));
    fake.requests.push(`POST ${req.url}`);
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => {
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // kept as text: the test then fails on it
      }
      reports.push({ digest: m[1]!, body });
      res.writeHead(202, { 'content-type': 'application/json' });
      res.end('{"status":"checking"}');
    });
  });
  return reports;
}
