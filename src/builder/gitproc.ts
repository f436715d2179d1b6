/**
 * Running git on the server. Two environments: `hermetic` (no system/global
 * config, fixed locale) for everything whose output must be deterministic, and
 * `network` (the operator's config, so credential helpers and SSH keys work,
 * but never an interactive prompt) for talking to upstreams.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SnapError } from '../util/errors.js';
import { redactUrl } from '../util/redact.js';
import { log } from '../util/log.js';
import { gitSaysDiskFull } from './disk-full.js';

export type GitEnv = 'hermetic' | 'network';

export function gitEnv(kind: GitEnv, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: 'true', ...extra };
  delete base.GIT_DIR;
  delete base.GIT_WORK_TREE;
  delete base.GIT_INDEX_FILE;
  if (kind === 'hermetic') {
    base.GIT_CONFIG_NOSYSTEM = '1';
    base.GIT_CONFIG_GLOBAL = '/dev/null';
    delete base.GIT_CONFIG_PARAMETERS;
    // GIT_CONFIG_COUNT/KEY_n/VALUE_n (e.g. the server's http.extraHeader for private upstreams,
    // docs/DEPLOY.md) are the operator's config too: for upstream (network) git only.
    for (const k of Object.keys(base)) if (/^GIT_CONFIG_(COUNT|KEY_\d+|VALUE_\d+)$/.test(k)) delete base[k];
  }
  return { ...base, ...extra };
}

export interface GitRunOptions {
  cwd?: string;
  env?: GitEnv;
  extraEnv?: Record<string, string>;
  /** stdin: all at once, or streamed (with backpressure) from an async iterable. */
  input?: string | Buffer | AsyncIterable<string | Buffer>;
  /** Error code to use when git fails (default 'build-failed'). */
  errorCode?: 'build-failed' | 'unreachable' | 'not-found';
  /** Kill git (code timeout) when it runs longer than this. */
  timeoutMs?: number;
  /** Kill git (code timeout) when it writes nothing (stdout or stderr: progress) for this long. */
  stallMs?: number;
}

/** After SIGTERM (to network git's whole process group: its transport too), SIGKILL this much later. */
const KILL_GRACE_MS = 5_000;
/** Kept of a git's stderr: its first chunk and its last ~256 KiB (its fatal lines), bounded under a long --progress. */
const STDERR_KEEP = 256 << 10;

/** Run git to completion and return stdout. Fails with git's reason (credentials redacted). */
export function runGit(args: string[], opts: GitRunOptions = {}): Promise<Buffer> {
  const t0 = Date.now();
  return new Promise<Buffer>((resolve, reject) => {
    const child = spawn('git', args, {
      cwd: opts.cwd,
      env: gitEnv(opts.env ?? 'hermetic', opts.extraEnv),
      stdio: ['pipe', 'pipe', 'pipe'],
      // Upstream git runs in a process group of its own, so a bound stops its transport too
      // (ssh, git-remote-https, index-pack): git does not kill them on SIGTERM, and they could
      // go on writing into the mirror after its fetch lock is released.
      detached: opts.env === 'network',
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let errBytes = 0;
    let inputError: unknown = null;
    const bound = watchBounds(child, opts);
    child.stdout.on('data', (b: Buffer) => {
      out.push(b);
      bound.activity();
    });
    child.stderr.on('data', (b: Buffer) => {
      bound.activity();
      // The head and the tail: a long --progress in between is dropped, git's fatal line comes last.
      err.push(b);
      errBytes += b.length;
      while (errBytes > STDERR_KEEP && err.length > 2) {
        errBytes -= err[1]!.length;
        err.splice(1, 1);
      }
    });
    child.on('error', (e) => {
      bound.stop();
      reject(new SnapError('internal', `cannot run git: ${e.message}`));
    });
    // A git killed for a bound may leave its transport (ssh) holding the pipes: do not wait for them.
    child.on('exit', () => {
      if (bound.expired) for (const p of [child.stdout, child.stderr]) p.destroy();
    });
    child.on('close', (code, signal) => {
      bound.stop();
      const why = signal ? `killed by ${signal}` : `exit ${code}`;
      log.debug(`git ${describeArgs(args)}${opts.cwd ? ` (in ${opts.cwd})` : ''}: ${why}, ${Date.now() - t0} ms`);
      if (bound.expired) return reject(new SnapError('timeout', `git ${gitSubcommand(args)} ${bound.expired}; stopped`));
      // A streamed input that failed is never a success, even if git saw a clean end of input.
      // Its error is the reason, unless git closed the pipe itself (then git's exit says why).
      if (inputError !== null) {
        const pipeClosedByGit = ['EPIPE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_PREMATURE_CLOSE'].includes((inputError as NodeJS.ErrnoException).code ?? '');
        if (code === 0 || !pipeClosedByGit) return reject(inputError);
      }
      if (code === 0) return resolve(Buffer.concat(out));
      reject(gitFailure(args, why, Buffer.concat(err).toString('utf8'), opts));
    });
    child.stdin.on('error', () => {}); // git may exit before reading all input; the exit code tells
    const input = opts.input ?? '';
    if (typeof input === 'string' || Buffer.isBuffer(input)) child.stdin.end(input);
    else
      pipeline(Readable.from(input), child.stdin).catch((e: unknown) => {
        inputError = e;
        child.kill();
      });
  });
}

interface Bounds {
  /** Why git was stopped ("ran longer than 120 s"), or null. */
  readonly expired: string | null;
  activity(): void;
  stop(): void;
}

/** The time bounds of one git run: a total and a stall timer, each stopping git when it fires. */
function watchBounds(child: ChildProcess, opts: GitRunOptions): Bounds {
  let expired: string | null = null;
  let killer: NodeJS.Timeout | null = null;
  const stopGit = (why: string): void => {
    if (expired !== null) return;
    expired = why;
    signalGit(child, 'SIGTERM', opts);
    killer = setTimeout(() => signalGit(child, 'SIGKILL', opts), KILL_GRACE_MS).unref();
  };
  const total = opts.timeoutMs ? setTimeout(() => stopGit(`ran longer than ${seconds(opts.timeoutMs!)}`), opts.timeoutMs).unref() : null;
  let stall: NodeJS.Timeout | null = null;
  const arm = (): void => {
    if (!opts.stallMs || expired !== null) return;
    if (stall) stall.refresh();
    else stall = setTimeout(() => stopGit(`received nothing for ${seconds(opts.stallMs!)}`), opts.stallMs).unref();
  };
  arm();
  return {
    get expired() {
      return expired;
    },
    activity: arm,
    stop() {
      for (const t of [total, stall, killer]) if (t) clearTimeout(t);
    },
  };
}

/** Signal git, and its whole process group when it has one of its own (network git). */
function signalGit(child: ChildProcess, signal: NodeJS.Signals, opts: GitRunOptions): void {
  if (opts.env === 'network' && child.pid !== undefined) {
    try {
      process.kill(-child.pid, signal);
      return;
    } catch {
      // the group is gone already: fall through to the child itself
    }
  }
  child.kill(signal);
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

/**
 * Run git and yield its stdout line by line (latin1, so every byte round-trips;
 * without the LF), holding one pipe buffer at a time. Throws git's reason when it
 * fails; stopping early kills it.
 */
export async function* gitLines(args: string[], opts: Omit<GitRunOptions, 'input'> & { input?: string | Buffer } = {}): AsyncGenerator<string> {
  const child = spawn('git', args, { cwd: opts.cwd, env: gitEnv(opts.env ?? 'hermetic', opts.extraEnv), stdio: ['pipe', 'pipe', 'pipe'], timeout: opts.timeoutMs });
  const err: Buffer[] = [];
  child.stderr.on('data', (b: Buffer) => err.push(b));
  const exited = new Promise<{ code: number | null; signal: string | null; spawnError?: Error }>((resolve) => {
    child.on('error', (e) => resolve({ code: null, signal: null, spawnError: e }));
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  child.stdin.on('error', () => {});
  child.stdin.end(opts.input ?? '');
  try {
    let rest = '';
    for await (const piece of child.stdout) {
      const lines = (rest + (piece as Buffer).toString('latin1')).split('\n');
      rest = lines.pop()!;
      for (const line of lines) yield line;
    }
    if (rest !== '') yield rest;
    const { code, signal, spawnError } = await exited;
    if (spawnError) throw new SnapError('internal', `cannot run git: ${spawnError.message}`);
    if (code !== 0) throw gitFailure(args, signal ? `killed by ${signal}` : `exit ${code}`, Buffer.concat(err).toString('utf8'), opts);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill();
  }
}

/**
 * The error of a failed git: its reason, with code `io` when the disk is full (whatever the
 * caller's code: a fetch that fills the disk is not an unreachable upstream), and `timeout`
 * when it was killed for running past its bound.
 */
function gitFailure(args: string[], why: string, stderr: string, opts: GitRunOptions): SnapError {
  const reason = gitFailureReason(stderr);
  const what = `git ${gitSubcommand(args)}`;
  if (gitSaysDiskFull(stderr)) return new SnapError('io', `disk full: ${what} failed (${why}): no space left on device${reason ? `: ${reason}` : ''}`);
  // curl's low-speed limit (http.lowSpeedTime) and connect timeouts: the upstream is slow, not gone.
  if (opts.env === 'network' && /operation too slow|operation timed out|connection timed out/i.test(stderr)) return new SnapError('timeout', `${what} failed (${why}): ${reason}`);
  return new SnapError(opts.errorCode ?? 'build-failed', `${what} failed (${why})${reason ? `: ${reason}` : ''}`);
}

/** Options git takes before its subcommand with the value as the next argument. */
const GLOBAL_WITH_VALUE = new Set(['-c', '-C', '--git-dir', '--work-tree', '--namespace', '--exec-path', '--config-env']);

/** The git subcommand of an argument list: `fetch` for `-c pack.threads=1 fetch ...`. */
export function gitSubcommand(args: string[]): string {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (GLOBAL_WITH_VALUE.has(a)) i++;
    else if (!a.startsWith('-')) return a;
  }
  return args[0] ?? '';
}

/**
 * What to keep of a failed git's stderr: its `fatal:` and `error:` lines, which
 * say why ("'/x' does not appear to be a git repository"), without the advice
 * git prints after them ("Please make sure you have the correct access
 * rights..."); failing those, its last lines. One line, credentials redacted,
 * no control characters (git's stderr can carry NULs and progress escapes).
 */
export function gitFailureReason(stderr: string): string {
  const lines = stderr
    .split(/\r?\n|\r/)
    .map((l) => l.replace(/[\u0000-\u001f\u007f-\u009f]/g, '').trim())
    .filter((l) => l !== '');
  const fatal = lines.filter((l) => /^(fatal|error):/i.test(l));
  const kept = fatal.length > 0 ? fatal.slice(0, 4) : lines.slice(-3);
  const text = redactUrl(kept.join(' / '));
  return text.length > 1000 ? `${text.slice(0, 1000)}...` : text;
}

function describeArgs(args: string[]): string {
  const text = args.map((a) => (/^[\w./:=@+,-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
  return text.length > 300 ? `${text.slice(0, 300)}...` : text;
}

/** Split NUL-terminated records (git -z output). */
export function splitZ(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = buf.indexOf(0, start); i !== -1; i = buf.indexOf(0, start)) {
    out.push(buf.subarray(start, i));
    start = i + 1;
  }
  if (start < buf.length) out.push(buf.subarray(start));
  return out;
}
