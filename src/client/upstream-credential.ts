/**
 * The caller's own credential for a private repository's upstream, which the
 * server checks against the upstream before serving anything of it
 * (docs/API.md, "Private repositories"). $SNAPCLONE_UPSTREAM_TOKEN is sent as
 * a bearer token; else git's credential helpers are asked (`git credential
 * fill`), exactly as `git clone` of that upstream would ask them, and told
 * the outcome (approve after the server accepted it, reject when refused).
 * The value lives in memory only: never logged, never written anywhere.
 */
import { lazyChildProcess } from '../util/lazy-builtin.js';
import { SnapError } from '../util/errors.js';

/** What a 401 names of the upstream: where the credential is for (never a credential). */
export interface UpstreamTarget {
  protocol: 'https' | 'http';
  host: string;
  path: string;
}

export interface UpstreamCredential {
  /** The header value: `Bearer <token>` or `Basic base64(user:password)`. */
  header: string;
  /** Where it came from, for messages: "$SNAPCLONE_UPSTREAM_TOKEN" or "git credential". */
  source: string;
  /** Tell git's helpers the credential worked / was refused (no-ops for the token). */
  approve(): Promise<void>;
  reject(): Promise<void>;
}

/** A credential helper that asks nobody must not hold up a clone. */
const HELPER_TIMEOUT_MS = 30_000;

/** `upstream` of a 401/403 answer, checked strictly (it ends up on a helper's stdin); null when absent or malformed. */
export function parseUpstreamTarget(v: unknown): UpstreamTarget | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const { protocol, host, path } = v as Record<string, unknown>;
  if (protocol !== 'https' && protocol !== 'http') return null;
  // A host[:port] and a path: printable, no newline or NUL (they would end git's key=value lines early).
  if (typeof host !== 'string' || !/^[A-Za-z0-9.\-[\]:]{1,300}$/.test(host)) return null;
  if (typeof path !== 'string' || path.length > 2000 || /[\x00-\x1f\x7f]/.test(path)) return null;
  return { protocol, host, path };
}

export function describeTarget(t: UpstreamTarget): string {
  return `${t.protocol}://${t.host}/${t.path}`;
}

/** The credential to present for `t`, or null when there is none (no token, no helper answer, no terminal to ask on). */
export async function upstreamCredential(t: UpstreamTarget, serverBase: string, env: NodeJS.ProcessEnv = process.env): Promise<UpstreamCredential | null> {
  const token = env.SNAPCLONE_UPSTREAM_TOKEN;
  if (token) {
    if (/[\x00-\x1f\x7f]/.test(token)) throw new SnapError('usage', '$SNAPCLONE_UPSTREAM_TOKEN holds a control character');
    return { header: `Bearer ${token}`, source: '$SNAPCLONE_UPSTREAM_TOKEN', approve: async () => {}, reject: async () => {} };
  }
  // git's helpers hold credentials for every host the user works with, and the host here is the
  // snapclone server's word: hand them out only where they would not travel in clear.
  const refused = gitCredentialRefusal(t, serverBase);
  if (refused) throw new SnapError('unauthorized', `${refused}; set $SNAPCLONE_UPSTREAM_TOKEN to present a credential anyway`);
  const description = `protocol=${t.protocol}\nhost=${t.host}\npath=${t.path}\n`;
  const filled = await gitCredential('fill', `${description}\n`, env);
  if (filled === null) return null;
  const fields = new Map<string, string>();
  for (const line of filled.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const username = fields.get('username') ?? '';
  const password = fields.get('password') ?? '';
  // An askpass that answers nothing (GIT_ASKPASS=true) gives empty strings: no credential.
  if (!username && !password) return null;
  const full = `${description}username=${username}\npassword=${password}\n\n`;
  return {
    header: `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`,
    source: 'git credential',
    approve: async () => void (await gitCredential('approve', full, env)),
    reject: async () => void (await gitCredential('reject', full, env)),
  };
}

function isLoopback(host: string): boolean {
  const h = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * Why git's stored credential for `t` must not be sent, or null: an upstream over plain http
 * (not loopback), or a snapclone server reached over plain http beyond loopback.
 */
export function gitCredentialRefusal(t: UpstreamTarget, serverBase: string): string | null {
  if (t.protocol !== 'https' && !isLoopback(t.host)) return `git credentials are given only for https upstreams, not ${describeTarget(t)}`;
  let server: URL;
  try {
    server = new URL(serverBase);
  } catch {
    return 'the snapclone server URL is not a URL';
  }
  if (server.protocol !== 'https:' && !isLoopback(server.host)) return `the snapclone server ${server.origin} is reached over plain http: a git credential would travel in clear`;
  return null;
}

/**
 * Run `git credential <action>` with `input` on stdin; its stdout, or null
 * when git is missing, fails or takes too long. Without a terminal, git must
 * not prompt (GIT_TERMINAL_PROMPT=0), so nothing waits on an answer no one can
 * give; with one, git prompts there as git clone would (and is not timed).
 */
function gitCredential(action: 'fill' | 'approve' | 'reject', input: string, env: NodeJS.ProcessEnv): Promise<string | null> {
  const interactive = process.stdin.isTTY === true && process.stderr.isTTY === true && env.GIT_TERMINAL_PROMPT !== '0';
  return new Promise((resolve) => {
    let child;
    try {
      child = lazyChildProcess().spawn('git', ['credential', action], {
        env: interactive ? env : { ...env, GIT_TERMINAL_PROMPT: '0' },
        stdio: ['pipe', 'pipe', 'ignore'],
      });
    } catch {
      return resolve(null);
    }
    let out = '';
    const timer = interactive ? null : setTimeout(() => child.kill('SIGKILL'), HELPER_TIMEOUT_MS);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (out += d.length + out.length > 64 * 1024 ? '' : d));
    child.on('error', () => resolve(null));
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      resolve(code === 0 ? out : null);
    });
    child.stdin.on('error', () => {}); // a helper that exits without reading
    child.stdin.end(input);
  });
}
