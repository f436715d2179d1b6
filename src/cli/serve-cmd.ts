/** `snapclone serve`: run the server in the foreground until a signal. Server code is imported only here. */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { SnapError } from '../util/errors.js';
import { zstdLevelFromEnv } from '../util/zstd-level.js';
import type { Values } from './common.js';
import { stopOnSignal } from './signals.js';

/** The data dir: --data-dir, else $SNAPCLONE_DATA_DIR, else ~/.local/share/snapclone. */
export function dataDirOf(v: Values): string {
  return resolve((v['data-dir'] as string | undefined) ?? process.env.SNAPCLONE_DATA_DIR ?? join(homedir(), '.local/share/snapclone'));
}

export async function serve(v: Values, args: string[]): Promise<number> {
  if (args.length) throw new SnapError('usage', 'serve takes no arguments');
  const port = Number(v.port ?? 7420);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new SnapError('usage', `invalid --port ${String(v.port)}`);
  const concurrency = Number(v['build-concurrency'] ?? 1);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new SnapError('usage', '--build-concurrency must be a positive integer');
  // The one check of the poll interval (a usage error before anything starts).
  const pollEvery = (await import('../serve/poller.js')).pollSeconds(v['poll-seconds'] as string | undefined);
  const dataDir = dataDirOf(v);
  // A bad $SNAPCLONE_ZSTD_LEVEL fails here, in one line, not at every build.
  zstdLevelFromEnv(process.env);
  const stopSignal = stopOnSignal('shutting down (waiting for running builds)');
  const { startServer } = await import('../serve/server.js');
  const server = await startServer({
    host: (v.host as string | undefined) ?? '127.0.0.1',
    port,
    dataDir,
    adminToken: process.env.SNAPCLONE_ADMIN_TOKEN || undefined,
    buildConcurrency: concurrency,
    noBuilds: v['no-builds'] === true,
    pollSeconds: pollEvery,
  });
  await stopSignal;
  await server.close().catch(() => {});
  return 0;
}
