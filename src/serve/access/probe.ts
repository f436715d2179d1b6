/**
 * One `GET <upstream>/info/refs?service=git-upload-pack` with node's http(s), the request git
 * itself starts a fetch with: anonymous (whether a repository is public) or with a caller's
 * `Authorization` value (whether that caller can read it). No git, no credential helpers: the
 * server's own credentials never take part. Only the status and the first bytes are read.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

export const PROBE_TIMEOUT_MS = 5_000;

export type ProbeAnswer =
  /** 200 and a git upload-pack advertisement: readable. */
  | { kind: 'readable' }
  /** 401 or 403: the upstream wants (other) credentials. */
  | { kind: 'refused'; status: number }
  /** Any other answer (404, 500, a web page): says nothing either way. */
  | { kind: 'other'; why: string }
  /** No answer in time. */
  | { kind: 'timeout'; why: string }
  /** No answer at all (refused connection, DNS, TLS). */
  | { kind: 'error'; why: string };

const MAX_REDIRECTS = 3;

/** Whether `url` is probed over http(s) (anything else has no info/refs to ask). */
export function isHttpUpstream(url: string): boolean {
  return /^https?:\/\//i.test(url);
}

/** The info/refs URL git asks first for an http(s) upstream. */
export function infoRefsUrl(url: string): URL {
  const u = new URL(url.replace(/\/+$/, ''));
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/info/refs`;
  u.search = '?service=git-upload-pack';
  return u;
}

export async function probeInfoRefs(upstream: string, authorization: string | null, timeoutMs = PROBE_TIMEOUT_MS): Promise<ProbeAnswer> {
  let target: URL;
  try {
    target = infoRefsUrl(upstream);
  } catch {
    return { kind: 'error', why: 'not a valid URL' };
  }
  const deadline = Date.now() + timeoutMs;
  const origin = target.origin;
  for (let hop = 0; ; hop++) {
    // A redirect elsewhere never carries the caller's credential (git drops it too).
    const auth = target.origin === origin ? authorization : null;
    const answer = await once(target, auth, Math.max(1, deadline - Date.now()));
    if ('redirect' in answer) {
      if (hop >= MAX_REDIRECTS) return { kind: 'other', why: 'too many redirects' };
      try {
        target = new URL(answer.redirect, target);
      } catch {
        return { kind: 'other', why: 'a redirect to an invalid URL' };
      }
      if (target.protocol !== 'https:' && target.protocol !== 'http:') return { kind: 'other', why: 'a redirect away from http(s)' };
      // A credential probe sent elsewhere proves nothing about the credential: an anonymous
      // answer there would grant any value. Fail closed (an anonymous probe may follow it).
      if (authorization !== null && target.origin !== origin) return { kind: 'other', why: 'redirected to another origin' };
      continue;
    }
    return answer;
  }
}

function once(url: URL, authorization: string | null, timeoutMs: number): Promise<ProbeAnswer | { redirect: string }> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { 'user-agent': 'git/2 (snapclone access probe)', 'git-protocol': 'version=2', accept: '*/*' };
    if (authorization !== null) headers.authorization = authorization;
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    let done = false;
    const finish = (a: ProbeAnswer | { redirect: string }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve(a);
    };
    const req = send(url, { method: 'GET', headers, agent: false }, (res) => onResponse(res, finish));
    const timer = setTimeout(() => finish({ kind: 'timeout', why: `no answer from ${url.host} within ${timeoutMs} ms` }), timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => finish({ kind: 'error', why: `${url.host}: ${e.code ?? e.message}` }));
    req.end();
  });
}

const ADVERTISEMENT = 'application/x-git-upload-pack-advertisement';

function onResponse(res: IncomingMessage, finish: (a: ProbeAnswer | { redirect: string }) => void): void {
  const status = res.statusCode ?? 0;
  if (status === 401 || status === 403) return finish({ kind: 'refused', status });
  if ([301, 302, 303, 307, 308].includes(status) && typeof res.headers.location === 'string') return finish({ redirect: res.headers.location });
  if (status !== 200) return finish({ kind: 'other', why: `the upstream answered HTTP ${status}` });
  if ((res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase() === ADVERTISEMENT) return finish({ kind: 'readable' });
  // A "dumb" server or a web page: readable only if the body is a smart advertisement.
  let head = '';
  res.on('data', (b: Buffer) => {
    head += b.toString('latin1');
    if (head.length >= 32) finish(/^[0-9a-f]{4}# service=git-upload-pack/.test(head) ? { kind: 'readable' } : { kind: 'other', why: 'HTTP 200 but not a git advertisement' });
  });
  res.on('end', () => finish(/^[0-9a-f]{4}# service=git-upload-pack/.test(head) ? { kind: 'readable' } : { kind: 'other', why: 'HTTP 200 but not a git advertisement' }));
  res.on('error', () => finish({ kind: 'error', why: 'the answer broke off' }));
}
