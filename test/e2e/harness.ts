/**
 * End-to-end harness: a real snapclone server (in this process, real HTTP on
 * an ephemeral loopback port) and the real CLI run as a subprocess, so exit
 * codes, stderr and argument parsing are tested as a user meets them.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../../src/serve/server.js';
import { hermeticEnv } from '../support/git.js';

const BIN = fileURLToPath(new URL('../../../bin/snapclone.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function cli(server: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: opts.cwd, env: { ...hermeticEnv(), SNAPCLONE_SERVER: server, ...opts.env }, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

/** Run the CLI and fail the test with its stderr if it does not exit 0. */
export async function cliOk(server: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  const r = await cli(server, args, opts);
  if (r.code !== 0) throw new Error(`snapclone ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

export async function startTestServer(dir: string, opts: { adminToken?: string; cacheBytes?: number } = {}): Promise<RunningServer> {
  process.env.SNAPCLONE_LOG ??= 'warn'; // keep test output readable; failures still log
  return startServer({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), adminToken: opts.adminToken, cacheBytes: opts.cacheBytes });
}
