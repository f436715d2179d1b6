/**
 * Running git on the server. Two environments: `hermetic` (no system/global
 * config, fixed locale) for everything whose output must be deterministic, and
 * `network` (the operator's config, so credential helpers and SSH keys work,
 * but never an interactive prompt) for talking to upstreams.
 */
import { spawn } from 'node:child_process';
import { SnapError } from '../util/errors.js';
import { redactUrl } from '../util/redact.js';

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
  }
  return { ...base, ...extra };
}

export interface GitRunOptions {
  cwd?: string;
  env?: GitEnv;
  extraEnv?: Record<string, string>;
  input?: string | Buffer;
  /** Error code to use when git fails (default 'build-failed'). */
  errorCode?: 'build-failed' | 'unreachable' | 'not-found';
  timeoutMs?: number;
}

/** Run git to completion and return stdout. Fails with git's stderr (credentials redacted). */
export function runGit(args: string[], opts: GitRunOptions = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, {
      cwd: opts.cwd,
      env: gitEnv(opts.env ?? 'hermetic', opts.extraEnv),
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new SnapError('internal', `cannot run git: ${e.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(Buffer.concat(out));
      const stderr = redactUrl(Buffer.concat(err).toString('utf8').trim()).split('\n').slice(-3).join(' / ');
      const why = signal ? `killed by ${signal}` : `exit ${code}`;
      reject(new SnapError(opts.errorCode ?? 'build-failed', `git ${args[0]} failed (${why})${stderr ? `: ${stderr}` : ''}`));
    });
    child.stdin.on('error', () => {}); // git may exit before reading all input; the exit code tells
    child.stdin.end(opts.input ?? '');
  });
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
