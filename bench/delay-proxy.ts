/**
 * A delaying TCP proxy (`--rtt MS`): netem is not available on these machines, so
 * round-trip delay is added here instead. Every chunk is forwarded MS/2 after it
 * arrived, in each direction, so a request and its answer cost one RTT on top of
 * the transfer (and of any --shape rate). Order is kept: the delay is constant, and
 * Node fires equal-delay timers in the order they were set.
 */
import { connect, createServer, type Socket } from 'node:net';

export interface DelayProxy {
  port: number;
  stop: () => Promise<void>;
}

function pipeDelayed(from: Socket, to: Socket, oneWayMs: number): void {
  let inFlight = 0;
  let ended = false;
  from.on('data', (d: Buffer) => {
    inFlight++;
    setTimeout(() => {
      inFlight--;
      // Backpressure: stop reading while the far side is full.
      if (!to.destroyed && !to.write(d)) (from.pause(), to.once('drain', () => from.resume()));
      if (ended && inFlight === 0) to.end();
    }, oneWayMs);
  });
  from.on('end', () => {
    ended = true;
    if (inFlight === 0) setTimeout(() => to.end(), oneWayMs);
  });
  from.on('error', () => to.destroy());
}

export async function startDelayProxy(targetPort: number, rttMs: number): Promise<DelayProxy> {
  const oneWay = rttMs / 2;
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (c) => {
    const u = connect({ host: '127.0.0.1', port: targetPort, allowHalfOpen: true });
    for (const s of [c, u]) {
      s.setNoDelay(true);
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    }
    // The connection itself takes a round trip before the first byte can go.
    c.pause();
    setTimeout(() => c.resume(), rttMs);
    pipeDelayed(c, u, oneWay);
    pipeDelayed(u, c, oneWay);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    stop: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A URL (http://127.0.0.1:P/..., git://127.0.0.1:P/...) rewritten to go through a new delaying proxy to P. */
export async function viaDelay(url: string, rttMs: number, proxies: DelayProxy[]): Promise<string> {
  const u = new URL(url);
  const p = await startDelayProxy(Number(u.port), rttMs);
  proxies.push(p);
  u.port = String(p.port);
  return u.toString().replace(/\/$/, url.endsWith('/') ? '/' : '');
}
