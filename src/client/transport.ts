/**
 * The one place the HTTP transport is chosen: fetch under Bun (native there;
 * node:http costs ~45 ms of CPU to load), node:http under Node (in its startup
 * snapshot; Node's fetch is undici, ~60 ms to load). With proxy variables set,
 * node:http everywhere: fetch would honour them and node:http never has.
 * SNAPCLONE_TRANSPORT=node|fetch overrides (tests drive the fetch transport in-process under Node with it).
 */
import type { Transport } from './transport-types.js';
import { PROXY_VARS } from './first-answer.js';

export function transportName(env: NodeJS.ProcessEnv = process.env): 'node' | 'fetch' {
  const forced = env.SNAPCLONE_TRANSPORT;
  if (forced === 'node' || forced === 'fetch') return forced;
  if (process.versions.bun === undefined || typeof fetch !== 'function') return 'node';
  if (PROXY_VARS.some((k) => env[k])) return 'node';
  return 'fetch';
}

let loading: Promise<Transport> | null = null;

/** The transport, loaded on first use (only the chosen one's modules load). */
export function loadTransport(): Promise<Transport> {
  loading ??= transportName() === 'fetch' ? import('./transport-fetch.js').then((m) => m.fetchTransport) : import('./transport-node.js').then((m) => m.nodeTransport);
  return loading;
}
