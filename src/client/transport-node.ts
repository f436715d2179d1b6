/**
 * The node:http transport (under Node): one http.Agent per pool, LIFO so the
 * warmest keep-alive socket goes first. node:http rather than undici: it is in
 * Node's startup snapshot (undici costs ~60 ms to load) and measured the
 * lowest CPU per GiB of the clients we tried (docs/BENCHMARKS.md).
 */
import http from 'node:http';
import https from 'node:https';
import { seconds, TransportError, type Answer, type Pool, type RequestLimits, type Transport } from './transport-types.js';

export const nodeTransport: Transport = {
  name: 'node',
  pool(protocol, connections) {
    const mod = protocol === 'https:' ? https : http;
    const agent = new mod.Agent({ keepAlive: true, maxSockets: connections, scheduling: 'lifo' });
    return {
      async request(spec, limits) {
        const u = spec.url;
        const res = await timedRequest(
          mod,
          // URL.hostname keeps an IPv6 address's brackets; the socket wants it bare (node brackets the Host header itself).
          { protocol: u.protocol, hostname: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: u.port, path: u.pathname + u.search, method: spec.method, headers: spec.headers, agent: spec.ownConnection ? false : agent },
          limits,
          spec.body,
        );
        return nodeAnswer(res);
      },
      close: () => agent.destroy(),
    } satisfies Pool;
  },
};

/**
 * Issue one request with the connect and first-byte limits (and, for JSON
 * calls, an idle limit on the socket). Errors before an answer are TransportErrors.
 */
function timedRequest(mod: typeof http | typeof https, options: http.RequestOptions, t: RequestLimits, body?: string): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = mod.request(options);
    let timer: NodeJS.Timeout | undefined;
    let connected = false;
    const fail = (message: string) => req.destroy(new TransportError(message, true));
    req.on('socket', (s) => {
      const awaitAnswer = () => {
        connected = true;
        clearTimeout(timer);
        timer = setTimeout(() => fail(`no answer within ${seconds(t.firstByteMs)}`), t.firstByteMs);
      };
      // A pooled keep-alive socket is connected already; a new one gets connectMs to come up.
      if (s.connecting) {
        timer = setTimeout(() => fail(`could not connect within ${seconds(t.connectMs)}`), t.connectMs);
        s.once('connect', awaitAnswer);
      } else awaitAnswer();
    });
    if (t.idleMs !== undefined) req.setTimeout(t.idleMs, () => fail(`no answer within ${seconds(t.idleMs!)}`));
    req.on('response', (res) => {
      clearTimeout(timer);
      resolve(res);
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err instanceof TransportError ? err : new TransportError(err.message, !connected));
    });
    req.end(body);
  });
}

function nodeAnswer(res: http.IncomingMessage): Answer {
  const headers: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(res.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : v;
  return {
    status: res.statusCode ?? 0,
    headers,
    read: (onChunk) =>
      new Promise<void>((resolve, reject) => {
        let done = false;
        const settle = (err?: Error) => {
          if (done) return;
          done = true;
          if (err) reject(err);
          else resolve();
        };
        // 'data' events rather than for-await: a promise per 64 KiB chunk costs ~10-40% of throughput.
        res.on('data', (chunk: Buffer) => {
          if (done) return;
          try {
            onChunk(chunk);
          } catch (err) {
            settle(err as Error);
            res.destroy();
          }
        });
        res.on('end', () => settle());
        res.on('error', (err) => settle(err));
        res.on('close', () => settle(new Error('')));
      }),
    async text(limit = Infinity) {
      let text = '';
      res.setEncoding('utf8');
      for await (const chunk of res) {
        text += chunk as string;
        if (text.length > limit) {
          res.destroy();
          break;
        }
      }
      return text;
    },
    abort: (err) => void res.destroy(err),
    discard: () => void res.resume(),
  };
}
