/**
 * A request the CLI sent before the client loaded (src/cli/first-request.ts:
 * under Bun, resolve through fetch), and the resolve path it and resolve.ts
 * both build. Kept free of imports so the CLI loads it for nothing.
 */

/** Proxy variables: node:http ignores them and fetch honours them, so with any set every request goes through node:http (transport.ts) and none early. */
export const PROXY_VARS = ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'ALL_PROXY', 'all_proxy'];

/** An answer as ServerClient reads it: status, lowercase headers, body text. */
export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

/** A request already sent, and its answer to come (a transport failure rejects it). */
export interface FirstAnswer {
  method: 'GET';
  /** Path below the server URL, query included, exactly as ServerClient sends it. */
  path: string;
  answer: Promise<RawAnswer>;
}

/** `peek`: only what is built (204 if nothing), never a build started (servers that predate it answer as without). */
export function resolvePath(name: string, ref: string, mode: 'full' | 'shallow' | 'files', proxy: boolean, peek = false): string {
  return `/v1/repos/${encodeURIComponent(name)}/resolve?ref=${encodeURIComponent(ref)}&mode=${mode}${proxy ? '&proxy=1' : ''}&inline=1${peek ? '&peek=1' : ''}`;
}
