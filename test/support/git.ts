/**
 * Test support: run the real git hermetically, and temporary directories that
 * clean themselves up.
 *
 * Every git invocation gets the same environment: no system config, a global
 * config file created here (user identity, init.defaultBranch=main,
 * protocol.file.allow=always), HOME and XDG_CONFIG_HOME pointing into a
 * private temp dir, LC_ALL=C, TZ=UTC, and every inherited GIT_* variable
 * removed (so running the tests from inside a git hook cannot leak GIT_DIR and
 * friends). Use hermeticEnv() to spawn other programs (snapclone itself) with
 * that same environment.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface GitOptions {
  /** Directory to run in (required: a test must never run git in the project checkout by accident). */
  cwd: string;
  /** Bytes or text for git's stdin. */
  input?: string | Buffer;
  /** Extra environment; a value of undefined removes the variable. Applied last. */
  env?: Record<string, string | undefined>;
  /**
   * Fixed author and committer date (GIT_AUTHOR_DATE and GIT_COMMITTER_DATE;
   * also the tagger date of annotated tags). A number is seconds since the
   * epoch (UTC), a string is passed as is (e.g. '1577836800 +0000').
   */
  date?: number | string;
}

export interface GitResult {
  status: number;
  stdout: Buffer;
  stderr: Buffer;
}

/** The identity the hermetic global config sets. */
export const GIT_USER = { name: 'Snapclone Test', email: 'test@snapclone.invalid' } as const;

// ---------------------------------------------------------------------------
// Temporary directories

const tmpDirs: string[] = [];
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    if (process.env.SNAPCLONE_KEEP_TMP) {
      if (tmpDirs.length > 0) process.stderr.write(`snapclone tests: kept temp dirs:\n  ${tmpDirs.join('\n  ')}\n`);
      return;
    }
    for (const d of tmpDirs.splice(0)) removeDir(d);
  });
}

function removeDir(d: string): void {
  try {
    fs.rmSync(d, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    // Read-only directories (a test may chmod one): make writable and retry once.
    try {
      makeTreeWritable(d);
      fs.rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

function makeTreeWritable(d: string | Buffer): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(d);
  } catch {
    return;
  }
  if (!st.isDirectory()) return;
  try {
    fs.chmodSync(d, 0o755);
  } catch {
    /* ignore */
  }
  const base = Buffer.isBuffer(d) ? d : Buffer.from(d);
  for (const name of fs.readdirSync(d, { encoding: 'buffer' })) {
    makeTreeWritable(Buffer.concat([base, Buffer.from('/'), name]));
  }
}

/**
 * Create a fresh empty directory under the OS temp dir (real path, symlinks
 * resolved) that is removed when the process exits. Set SNAPCLONE_KEEP_TMP=1
 * to keep them for debugging (their paths are printed at exit).
 */
export function tmpDir(prefix: string): string {
  installExitHook();
  const safe = prefix.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^snapclone-/, '') || 'tmp';
  const d = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `snapclone-${safe}-`)));
  tmpDirs.push(d);
  return d;
}

/** Remove a directory made by tmpDir() now instead of at exit. */
export function removeTmpDir(d: string): void {
  const i = tmpDirs.indexOf(d);
  if (i >= 0) tmpDirs.splice(i, 1);
  removeDir(d);
}

// ---------------------------------------------------------------------------
// Hermetic environment

let hermeticHome: string | undefined;

/** The private HOME (holding the global git config file) shared by all git calls of this process. */
export function gitHome(): string {
  if (hermeticHome === undefined) {
    const home = tmpDir('home');
    fs.writeFileSync(
      path.join(home, '.gitconfig'),
      [
        '[user]',
        `\tname = ${GIT_USER.name}`,
        `\temail = ${GIT_USER.email}`,
        '[init]',
        '\tdefaultBranch = main',
        '[protocol "file"]',
        '\tallow = always',
        '[advice]',
        '\tdetachedHead = false',
        '[gc]',
        '\tauto = 0',
        '[maintenance]',
        '\tauto = false',
        '',
      ].join('\n'),
    );
    fs.mkdirSync(path.join(home, '.config'), { recursive: true });
    hermeticHome = home;
  }
  return hermeticHome;
}

/** Path of the global config file every git call uses (GIT_CONFIG_GLOBAL). */
export function gitGlobalConfigPath(): string {
  return path.join(gitHome(), '.gitconfig');
}

/**
 * The environment git runs with: process.env without any GIT_* variables,
 * plus the hermetic settings, plus `extra` (undefined values delete).
 */
export function hermeticEnv(extra?: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const home = gitHome();
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('GIT_') || k === 'EMAIL' || k.startsWith('LC_') || k === 'LANG' || k === 'LANGUAGE') continue;
    env[k] = v;
  }
  Object.assign(env, {
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: path.join(home, '.gitconfig'),
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: 'true',
    GIT_PAGER: 'cat',
    PAGER: 'cat',
    LC_ALL: 'C',
    TZ: 'UTC',
  });
  if (extra) {
    for (const [k, v] of Object.entries(extra)) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
  }
  return env;
}

function dateEnv(date: number | string | undefined): Record<string, string> {
  if (date === undefined) return {};
  const d = typeof date === 'number' ? `${Math.floor(date)} +0000` : date;
  return { GIT_AUTHOR_DATE: d, GIT_COMMITTER_DATE: d };
}

// ---------------------------------------------------------------------------
// Running git

/** Run git; never throws for a non-zero exit (it does throw if git cannot be started). */
export function gitTry(args: readonly string[], opts: GitOptions): GitResult {
  const env = hermeticEnv({ ...dateEnv(opts.date), ...(opts.env ?? {}) });
  const r = spawnSync('git', args as string[], {
    cwd: opts.cwd,
    input: opts.input,
    env,
    maxBuffer: 2 ** 31 - 1,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (r.error) throw new Error(`git ${args.join(' ')}: ${r.error.message}`);
  return {
    status: r.status ?? (r.signal ? 128 : 1),
    stdout: r.stdout ?? Buffer.alloc(0),
    stderr: r.stderr ?? Buffer.alloc(0),
  };
}

/** Run git synchronously and return its stdout; throws (with stderr) if it exits non-zero. */
export function git(args: readonly string[], opts: GitOptions): Buffer {
  const r = gitTry(args, opts);
  if (r.status !== 0) {
    throw new Error(
      `git ${args.map(quoteArg).join(' ')} (in ${opts.cwd}) exited ${r.status}:\n${r.stderr.toString('utf8').trimEnd()}`,
    );
  }
  return r.stdout;
}

/** git(...) decoded as UTF-8 with the trailing newline(s) removed. */
export function gitText(args: readonly string[], opts: GitOptions): string {
  return git(args, opts).toString('utf8').replace(/\n+$/, '');
}

function quoteArg(a: string): string {
  return /^[A-Za-z0-9_./=:,@%+-]+$/.test(a) ? a : JSON.stringify(a);
}

/** A file:// URL for a local repository path (use it to clone: `--depth` is ignored for plain local paths). */
export function fileUrl(repoPath: string): string {
  // git does not percent-decode file:// URLs, so the path goes in verbatim.
  return 'file://' + path.resolve(repoPath);
}
