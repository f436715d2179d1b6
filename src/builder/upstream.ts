/**
 * Upstream URLs and what they advertise. Only plain transports are accepted
 * (no ext:: or other remote helpers that could run commands on the server),
 * and never a URL with an embedded password: secrets are not stored.
 */
import { isAbsolute, join } from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { SnapError } from '../util/errors.js';
import { hasEmbeddedPassword, redactUrl } from '../util/redact.js';
import { runGit } from './gitproc.js';

const SCHEMES = /^(https?|ssh|git|file):\/\//i;
const SCP_LIKE = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/\\]/; // git@github.com:owner/repo.git

/** Refuse what snapclone will not fetch from; a bad URL is the caller's mistake (usage, exit 2). */
export function validateUpstreamUrl(url: string): void {
  if (typeof url !== 'string' || url.length === 0 || url.length > 2048) throw new SnapError('usage', 'upstream URL is empty or too long');
  if (/[\x00-\x1f\x7f]/.test(url)) throw new SnapError('usage', 'upstream URL contains control characters');
  if (url.startsWith('-')) throw new SnapError('usage', 'upstream URL may not start with "-"');
  // Over http(s) any user info may be a token (https://<token>@host works on common forges), so none is stored.
  if (hasEmbeddedPassword(url) || /^https?:\/\/[^/]*@/i.test(url))
    throw new SnapError('usage', 'upstream URL embeds credentials; snapclone does not store secrets. Use a credential helper or SSH key on the server.');
  if (SCHEMES.test(url) || SCP_LIKE.test(url) || isAbsolute(url)) return;
  throw new SnapError('usage', `unsupported upstream URL ${JSON.stringify(url)} (use https://, ssh://, git://, file://, user@host:path or an absolute path)`);
}

const DEFAULT_PORTS: Record<string, string> = { http: '80', https: '443', ssh: '22', git: '9418' };

/**
 * The spelling of an upstream that compares it: two URLs with one normal form are the
 * same upstream. (What is stored and written to a clone's remote.origin.url is the URL as
 * given, as git clone writes it.) Only rewrites git reads
 * the same way: file:///x is the path /x; "//" and "/./" in a local path; trailing
 * slashes; the scheme's and host's case and a default port. Path case, ".git" and ".."
 * are kept (they can name different repositories).
 */
export function normalizeUpstreamUrl(url: string): string {
  const file = /^file:\/\/(\/.*)$/i.exec(url); // empty host only: file://host/x is not a local path
  const u = file ? percentDecoded(file[1]!) : url; // git decodes a file:// URL's %XX
  if (u.startsWith('/')) return u.replace(/\/{2,}/g, '/').replace(/\/\.(?=\/|$)/g, '').replace(/\/+$/, '') || '/';
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(.*)$/.exec(u);
  if (m) {
    const scheme = m[1]!.toLowerCase();
    const at = m[2]!.lastIndexOf('@');
    const user = m[2]!.slice(0, at + 1); // user names are case-sensitive
    let host = m[2]!.slice(at + 1).toLowerCase();
    const port = /:(\d+)$/.exec(host);
    if (port && DEFAULT_PORTS[scheme] === port[1]) host = host.slice(0, -port[0].length);
    return `${scheme}://${user}${host}${m[3]!.replace(/\/+$/, '')}${m[4]!}`;
  }
  const scp = /^([^@/]+@)([^:/]+):(.*)$/.exec(u);
  if (scp) return `${scp[1]}${scp[2]!.toLowerCase()}:${scp[3]!.replace(/\/+$/, '')}`;
  return u.replace(/\/+$/, '');
}

function percentDecoded(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path; // not valid %-encoding: git would not decode it either
  }
}

/** Validate a URL and give its normal form, the key the API compares upstreams by. */
export function upstreamKey(url: string): string {
  validateUpstreamUrl(url);
  const normal = normalizeUpstreamUrl(url);
  validateUpstreamUrl(normal); // e.g. file:///x%0a decodes to a control character
  return normal;
}

/** How long snapclone waits on an upstream; from the environment (see upstreamBounds). */
export interface UpstreamBounds {
  /** ls-remote (a sync's first question, a registration's check): total. */
  askMs: number;
  /** A mirror fetch: total. */
  fetchMs: number;
  /** Any talk with the upstream: nothing received (no progress, under curl's low-speed limit) for this long. */
  stallMs: number;
}

const BOUND_VARS: [keyof UpstreamBounds, string, number][] = [
  ['askMs', 'SNAPCLONE_UPSTREAM_TIMEOUT_SECONDS', 120],
  ['fetchMs', 'SNAPCLONE_FETCH_TIMEOUT_SECONDS', 3600],
  ['stallMs', 'SNAPCLONE_UPSTREAM_STALL_SECONDS', 300],
];

/** The bounds from SNAPCLONE_UPSTREAM_TIMEOUT_SECONDS, SNAPCLONE_FETCH_TIMEOUT_SECONDS and SNAPCLONE_UPSTREAM_STALL_SECONDS; a bad value is a usage error. */
export function upstreamBounds(env: NodeJS.ProcessEnv = process.env): UpstreamBounds {
  const b = {} as UpstreamBounds;
  for (const [key, name, dflt] of BOUND_VARS) {
    const raw = env[name];
    const s = raw === undefined || raw === '' ? dflt : Number(raw);
    if (!Number.isFinite(s) || s <= 0 || s > 86_400) throw new SnapError('usage', `${name} must be a number of seconds from 0 to 86400 (exclusive of 0), got ${JSON.stringify(raw)}`);
    b[key] = Math.round(s * 1000);
  }
  return b;
}

/**
 * Environment for git talking to an upstream: curl's low-speed limit stops an
 * http(s) transfer that stalls (below 1 byte/s for the stall time); the run's own stall timer
 * (no output, progress included) does the same for every transport (ssh, git://, a local path).
 */
export function upstreamGitEnv(bounds: UpstreamBounds, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  // As GIT_CONFIG_* entries appended after the operator's own (http.extraHeader may be there),
  // not -c: the command lines the logs show stay git's.
  const n = Number(env.GIT_CONFIG_COUNT) || 0;
  return {
    GIT_CONFIG_COUNT: String(n + 2),
    [`GIT_CONFIG_KEY_${n}`]: 'http.lowSpeedLimit',
    [`GIT_CONFIG_VALUE_${n}`]: '1',
    [`GIT_CONFIG_KEY_${n + 1}`]: 'http.lowSpeedTime',
    [`GIT_CONFIG_VALUE_${n + 1}`]: String(Math.max(1, Math.round(bounds.stallMs / 1000))),
  };
}

export interface RemoteRefs {
  /** Branch the upstream HEAD names (also for an empty upstream), or null. */
  head: string | null;
  /** refs/heads/* and refs/tags/* -> oid (not peeled). */
  refs: Map<string, string>;
}

/** Ask the upstream what it has: one round trip, no objects transferred. */
export async function lsRemote(url: string): Promise<RemoteRefs> {
  const bounds = upstreamBounds();
  const out = await runGit(['ls-remote', '--symref', '--', url, 'HEAD', 'refs/heads/*', 'refs/tags/*'], {
    env: 'network',
    extraEnv: upstreamGitEnv(bounds),
    errorCode: 'unreachable',
    timeoutMs: bounds.askMs,
    stallMs: bounds.stallMs,
  }).catch((err: unknown) => {
    throw err instanceof SnapError && err.code === 'timeout' ? new SnapError('timeout', `upstream ${redactUrl(url)} did not answer in time: ${err.message}`) : err;
  });
  let head: string | null = null;
  let headAdvertised = false;
  const refs = new Map<string, string>();
  for (const line of out.toString('utf8').split('\n')) {
    if (!line) continue;
    const sym = /^ref: refs\/heads\/(\S+)\tHEAD$/.exec(line);
    if (sym) {
      head = sym[1]!;
      continue;
    }
    if (/^[0-9a-f]{40}\tHEAD$/.test(line)) headAdvertised = true; // a detached HEAD
    const m = /^([0-9a-f]{40})\t(refs\/(?:heads|tags)\/\S+)$/.exec(line);
    if (m && !m[2]!.endsWith('^{}')) refs.set(m[2]!, m[1]!);
  }
  // No HEAD at all: an empty upstream, or a HEAD naming a branch that does not exist.
  if (head === null && !headAdvertised) head = await unbornHead(url, refs.size > 0);
  return { head, refs };
}

/**
 * ls-remote does not report the branch an unborn HEAD names (an empty upstream,
 * or a HEAD naming a missing branch). A bare --depth 1 clone learns it the way
 * git clone does, and is instant: with no remote head it fetches nothing.
 */
async function unbornHead(url: string, hasRefs: boolean): Promise<string | null> {
  const dir = await mkdtemp(join(tmpdir(), 'snapclone-unborn-'));
  try {
    // --no-local: a plain path would otherwise be copied whole, ignoring --depth.
    const bounds = upstreamBounds();
    await runGit(['clone', '--bare', '--no-local', ...(hasRefs ? ['--depth', '1'] : []), '--quiet', '--', url, join(dir, 'r.git')], {
      env: 'network',
      extraEnv: upstreamGitEnv(bounds),
      errorCode: 'unreachable',
      timeoutMs: bounds.askMs,
      stallMs: bounds.stallMs,
    });
    const ref = (await runGit(['symbolic-ref', '-q', 'HEAD'], { cwd: join(dir, 'r.git') })).toString().trim();
    return ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : null;
  } catch {
    return null;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
