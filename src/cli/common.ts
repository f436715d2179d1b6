/** What every client command shares: flag values, the server URL, output, a client, job waiting. */
import { SnapError } from '../util/errors.js';
import { assertRepoName } from '../client/names.js';
import { writeOut } from '../client/stdio.js';

export type Values = Record<string, string | boolean | undefined>;

const DEFAULT_SERVER = 'http://127.0.0.1:7420';

export function serverUrl(v: Values): string {
  return (v.server as string | undefined) ?? process.env.SNAPCLONE_SERVER ?? DEFAULT_SERVER;
}

export function out(v: Values, json: unknown, human: string): void {
  writeOut(v.json ? `${JSON.stringify(json)}\n` : human);
}

export function oneArg(args: string[], what: string, cmd: string): string {
  if (args.length !== 1) throw new SnapError('usage', `${cmd} takes exactly one ${what} (see snapclone help ${cmd})`);
  return args[0]!;
}

/** A repository name argument, checked here (usage, exit 2) before any request. */
export function repoName(name: string): string {
  assertRepoName(name);
  return name;
}

export type Client = InstanceType<typeof import('../client/http.js').ServerClient>;

/** Run `fn` with a client for the server the flags name, closing it afterwards. */
export async function withClient<T>(v: Values, fn: (c: Client) => Promise<T>): Promise<T> {
  const { ServerClient } = await import('../client/http.js');
  const c = new ServerClient(serverUrl(v), { token: process.env.SNAPCLONE_TOKEN || undefined, connections: 2 });
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

export interface JobView {
  id: number;
  state: string;
  phase: string;
  error: string | null;
  /** Why a failed job failed, as an error code (servers that send it). */
  errorCode?: string | null;
  commit: string | null;
}

/**
 * Follow a server job until it ends, showing its phase on a terminal (not with
 * --quiet). A failed job fails with the code it carries (failedJobError).
 */
export async function waitJob(c: Client, job: JobView, label: string, quiet = false): Promise<JobView> {
  const tty = process.stderr.isTTY === true && !quiet;
  let last = '';
  while (job.state === 'queued' || job.state === 'running') {
    const line = `${label}: ${job.phase || job.state}`;
    if (tty && line !== last) process.stderr.write(`\r\x1b[K${line}`);
    last = line;
    await new Promise((r) => setTimeout(r, 250));
    job = (await c.json('GET', `/v1/jobs/${job.id}`)).json as unknown as JobView;
  }
  if (tty) process.stderr.write('\r\x1b[K');
  if (job.state === 'failed') throw (await import('../client/http.js')).failedJobError(job, 'build');
  return job;
}
