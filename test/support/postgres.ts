/**
 * A real PostgreSQL server for tests: a fresh cluster (Debian's initdb/pg_ctl) in a temp dir on a
 * free loopback port, one per test FILE (start it in a before hook: start-up takes about a second).
 * Run as the `postgres` user when we are root (postgres refuses to run as root).
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';

const run = promisify(execFile);

export interface PostgresServer {
  /** The server's `postgres` database: postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  /** A fresh, empty database on this server; its URL. */
  createDatabase(): Promise<string>;
  /** Stops the server (immediate shutdown) and removes its directory. */
  stop(): Promise<void>;
}

/**
 * Where initdb and pg_ctl live (the newest installed major version), or null.
 * SNAPCLONE_POSTGRES_BIN names the directory instead (another install, or a missing one).
 */
export function postgresBinDir(): string | null {
  const override = process.env.SNAPCLONE_POSTGRES_BIN;
  if (override) return existsSync(join(override, 'initdb')) && existsSync(join(override, 'pg_ctl')) ? override : null;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? join(root, versions[0]!, 'bin') : null;
}

/**
 * Why PostgreSQL tests cannot run here, or null when they can. With SNAPCLONE_REQUIRE_SERVERS=1
 * (CI) a missing server is an error, not a skip: it throws, so the test file fails saying what is missing.
 */
export function postgresSkipReason(): string | null {
  if (postgresBinDir() !== null && (!isRoot() || postgresUser() !== null)) return null;
  const what =
    postgresBinDir() === null
      ? `PostgreSQL server binaries (initdb, pg_ctl under ${process.env.SNAPCLONE_POSTGRES_BIN || '/usr/lib/postgresql/*/bin'}) are not installed: apt-get install postgresql`
      : 'the postgres system user does not exist (needed to run PostgreSQL as root): apt-get install postgresql';
  if (process.env.SNAPCLONE_REQUIRE_SERVERS === '1') throw new Error(`SNAPCLONE_REQUIRE_SERVERS=1 but ${what}`);
  return what;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function postgresUser(): { uid: number; gid: number } | null {
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : null;
  } catch {
    return null;
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function startPostgres(): Promise<PostgresServer> {
  const reason = postgresSkipReason();
  if (reason) throw new Error(reason);
  const bin = postgresBinDir()!;
  const asPostgres = isRoot();
  const owner = asPostgres ? postgresUser()! : null;
  // runuser when root: initdb and postgres refuse to run as root.
  const cmd = (exe: string, args: string[]): [string, string[]] =>
    asPostgres ? ['runuser', ['-u', 'postgres', '--', join(bin, exe), ...args]] : [join(bin, exe), args];

  const base = mkdtempSync(join(tmpdir(), 'snapclone-pg-'));
  chmodSync(base, 0o755); // mkdtemp makes it 700: the postgres user must reach the data dir inside
  const data = join(base, 'data');
  const sock = join(base, 'sock');
  const logFile = join(base, 'server.log');
  mkdirSync(data, { mode: 0o700 });
  mkdirSync(sock, { mode: 0o755 });
  if (owner) {
    chownSync(base, owner.uid, owner.gid);
    chownSync(data, owner.uid, owner.gid);
    chownSync(sock, owner.uid, owner.gid);
  }
  let stopped = false;
  const stopSync = (): void => {
    if (stopped) return;
    stopped = true;
    try {
      const [exe, args] = cmd('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']);
      execFileSync(exe, args, { stdio: 'ignore' });
    } catch {
      // not running
    }
    rmSync(base, { recursive: true, force: true });
  };
  // A test file that dies without its after hook must not leave a server behind.
  process.once('exit', stopSync);

  try {
    const [initExe, initArgs] = cmd('initdb', ['-D', data, '--auth=trust', '--no-sync', '-U', 'postgres', '--encoding=UTF8', '--locale=C']);
    await run(initExe, initArgs);
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      const opts = `-p ${port} -k ${sock} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=300`;
      const [exe, args] = cmd('pg_ctl', ['-D', data, '-w', '-t', '30', '-l', logFile, '-o', opts, 'start']);
      try {
        await run(exe, args);
        break;
      } catch (err) {
        // Another process may have taken the port between the probe and the start: try another.
        if (attempt >= 3) {
          const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000) : '';
          throw new Error(`PostgreSQL did not start: ${(err as Error).message}\n${log}`);
        }
      }
    }
    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    let dbCount = 0;
    return {
      url,
      async createDatabase() {
        const name = `t${++dbCount}_${process.pid}`;
        await admin.unsafe(`CREATE DATABASE ${name}`);
        return `postgres://postgres@127.0.0.1:${port}/${name}`;
      },
      async stop() {
        await admin.end({ timeout: 1 }).catch(() => {});
        process.removeListener('exit', stopSync);
        if (stopped) return;
        stopped = true;
        try {
          const [exe, args] = cmd('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']);
          await run(exe, args);
        } finally {
          rmSync(base, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    process.removeListener('exit', stopSync);
    stopSync();
    throw err;
  }
}
