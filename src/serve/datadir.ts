/**
 * The server's data dir: making sure it is a usable directory, and holding it
 * exclusively while a server runs, so a second `snapclone serve` on the same
 * dir (any port) is refused before it touches anything.
 *
 * The lock is an OS-level one, not a pid file: <data-dir>/server.lock is a tiny
 * SQLite file that the running server keeps open in SQLite's EXCLUSIVE locking
 * mode, i.e. it holds a POSIX fcntl write lock on it. The kernel drops that
 * lock when the process dies however it dies (SIGKILL, OOM, power loss), so a
 * stale lock cannot exist and a reused pid cannot fake a live holder; and it
 * works across pid namespaces (containers sharing a volume), where a pid file's
 * liveness check would not. Node has no flock(); SQLite (already our database)
 * gives us fcntl locking; the lock is taken by an empty exclusive transaction,
 * which writes nothing (see takeExclusive). <data-dir>/server.pid only names the holder for the
 * refusal message; it is never used to decide anything.
 *
 * Never open server.lock with node:fs in the server process: closing any fd of
 * a file drops the process's fcntl locks on it (SQLite works around that for
 * its own connections only).
 */
import { accessSync, constants, existsSync, linkSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { SnapError } from '../util/errors.js';
import { makeDirs } from '../util/make-dirs.js';

export const LOCK_FILE = 'server.lock';
export const PID_FILE = 'server.pid';

/** Create the data dir if needed and check it is a directory we can write; a usage error (exit 2) otherwise. */
export function prepareDataDir(dir: string): void {
  const unusable = (why: string) => new SnapError('usage', `data dir ${dir} is not a usable directory: ${why} (set --data-dir or SNAPCLONE_DATA_DIR)`);
  try {
    makeDirs(dir);
  } catch (err) {
    throw unusable(errText(err));
  }
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (err) {
    throw unusable(errText(err));
  }
  if (!isDir) throw unusable('it exists and is not a directory');
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch {
    throw unusable('not writable by this user');
  }
}

export interface DataDirLock {
  /** Drop the lock (idempotent). */
  release(): void;
}

/** Hold the data dir for this process, or fail with code `locked` (exit 14) naming the holder's pid. */
export function lockDataDir(dir: string): DataDirLock {
  const lockPath = join(dir, LOCK_FILE);
  let db: Db;
  try {
    createLockFile(lockPath);
    // timeout 0: a held lock is an answer, not something to wait for.
    db = new Database(lockPath, { timeout: 0 });
  } catch (err) {
    throw new SnapError('usage', `data dir ${dir} is not a usable directory: cannot create ${lockPath}: ${errText(err)}`);
  }
  try {
    takeExclusive(db);
  } catch (err) {
    db.close();
    const code = (err as { code?: string }).code;
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
      throw new SnapError('locked', `data dir ${dir} is in use by another snapclone server or worker (${describeHolder(dir)}); stop it, or use another --data-dir`);
    }
    if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
      throw new SnapError('invalid', `${lockPath} is not a snapclone lock file; if no snapclone server uses ${dir}, delete it and start again`);
    }
    throw new SnapError('usage', `data dir ${dir} is not a usable directory: cannot lock ${lockPath}: ${errText(err)}`);
  }
  const pidPath = join(dir, PID_FILE);
  writePidFile(pidPath);
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      if (readPid(pidPath) === process.pid) rmSync(pidPath, { force: true });
      db.close();
    },
  };
}

/**
 * BEGIN EXCLUSIVE takes the exclusive lock, and in EXCLUSIVE locking mode the COMMIT keeps
 * it until close. A commit with no changes writes nothing to an initialized file, so a
 * start (or a crash during one) never changes a byte of the lock file.
 */
function takeExclusive(db: Db): void {
  db.pragma('locking_mode = EXCLUSIVE'); // keep every lock once taken, until close
  db.pragma('journal_mode = MEMORY'); // no journal file beside the lock
  db.exec('BEGIN EXCLUSIVE');
  db.exec('COMMIT');
}

/**
 * The only write a lock file ever gets is SQLite initializing its first page, on the first
 * commit. Done on a private file that then appears under its name whole (link is
 * create-only: of racing starters one creates it, the others use it), so a crash
 * cannot leave a half-written lock file for the next start to refuse.
 */
function createLockFile(lockPath: string): void {
  if (existsSync(lockPath)) return;
  const tmp = `${lockPath}.${process.pid}-${Date.now()}.tmp`;
  try {
    const db = new Database(tmp);
    try {
      takeExclusive(db);
    } finally {
      db.close();
    }
    try {
      linkSync(tmp, lockPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  } finally {
    rmSync(tmp, { force: true });
  }
}

function writePidFile(path: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, `${JSON.stringify({ pid: process.pid, since: new Date().toISOString() })}\n`);
    renameSync(tmp, path); // whole or not at all, for a reader racing us
  } catch {
    rmSync(tmp, { force: true }); // the pid file is informational; the lock is what counts
  }
}

function readPid(path: string): number | null {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as { pid?: unknown };
    return typeof v.pid === 'number' ? v.pid : null;
  } catch {
    return null;
  }
}

function describeHolder(dir: string): string {
  try {
    const v = JSON.parse(readFileSync(join(dir, PID_FILE), 'utf8')) as { pid?: unknown; since?: unknown };
    if (typeof v.pid === 'number') return `pid ${v.pid}${typeof v.since === 'string' ? `, running since ${v.since}` : ''}`;
  } catch {
    // Written just after the lock is taken: a holder that is still starting may not have it yet.
  }
  return 'pid unknown';
}

function errText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return (e?.message ?? String(err)).split('\n')[0]!;
}
