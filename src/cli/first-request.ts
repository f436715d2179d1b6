/**
 * The clone's first request (resolve), sent before the client's modules load.
 *
 * Under Bun, `fetch` is native and costs ~1 ms to first use, while node:http
 * (what ServerClient speaks) is a JavaScript layer that takes ~45 ms of CPU to
 * load: sending resolve through fetch first lets the request be on its way
 * ~10 ms after the process starts, and the rest of the client loads while the
 * server answers. ServerClient then takes this answer as the answer to its
 * first identical GET (ServerClient.answerFirst), so 429 waits, 401
 * credential prompts and errors are handled there exactly as for any answer.
 *
 * Under Node nothing is sent early: fetch (undici) loads slower there than
 * node:http, and Node's own start-up (~50 ms) dominates anyway.
 */
import { lstatSync, readdirSync } from 'node:fs';
import { PROXY_VARS, resolvePath, type FirstAnswer } from '../client/first-answer.js';

export type { FirstAnswer };

/** A resolve on its way; cancel() ends it (a no-op once answered): a pending fetch holds the process open. */
export type EarlyResolve = FirstAnswer & { cancel(): void };

/**
 * Limits the client reads from the environment (artifact-download.ts
 * timeoutsFromEnv, which ServerClient checks when it is made). With any set,
 * nothing leaves early: a bad value is then a usage error before any request
 * (that module costs too much to load here), and a good one bounds resolve too.
 */
const TIMEOUT_VARS = ['SNAPCLONE_CONNECT_TIMEOUT_MS', 'SNAPCLONE_FIRST_BYTE_TIMEOUT_MS', 'SNAPCLONE_STALL_TIMEOUT_MS'];

/** ServerClient's limit on waiting for a JSON answer. */
const JSON_TIMEOUT_MS = 120_000;

/**
 * Send resolve now when that is safe and pays: under Bun, to a plain http(s)
 * server URL, with no proxy variables (node:http ignores them, fetch would
 * not), no timeout variables, and only when the target can take the clone
 * (else the clone fails before asking the server, and an early resolve could
 * start a build for nothing). The caller cancels it if the clone ends without it.
 */
export function sendFirstResolve(o: { server: string; token: string | undefined; name: string; ref: string; mode: 'full' | 'shallow' | 'files'; proxy: boolean; dir: string }): EarlyResolve | null {
  if (process.versions.bun === undefined || typeof fetch !== 'function') return null;
  if ([...PROXY_VARS, ...TIMEOUT_VARS].some((k) => process.env[k])) return null;
  let u: URL;
  try {
    u = new URL(o.server);
  } catch {
    return null; // ServerClient says why
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.username || u.password || !targetTakesClone(o.dir)) return null;
  const path = resolvePath(o.name, o.ref, o.mode, o.proxy);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  const url = u.origin + u.pathname.replace(/\/+$/, '') + path;
  const stop = new AbortController();
  const answer = fetch(url, { headers, redirect: 'manual', signal: AbortSignal.any([stop.signal, AbortSignal.timeout(JSON_TIMEOUT_MS)]) }).then(async (res) => {
    const h: Record<string, string> = {};
    res.headers.forEach((v, k) => (h[k.toLowerCase()] = v));
    return { status: res.status, headers: h, text: await res.text() };
  });
  answer.catch(() => {}); // taken (and its failure reported) by ServerClient; never an unhandled rejection
  return { method: 'GET', path, answer, cancel: () => stop.abort() };
}

/** Missing, or an empty directory (or a link to one): the only targets a clone takes (staging.ts checks it for real; anything odd, such as a parent that is a file, is left to it). */
function targetTakesClone(dir: string): boolean {
  try {
    lstatSync(dir);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
  try {
    return readdirSync(dir).length === 0;
  } catch {
    return false;
  }
}
