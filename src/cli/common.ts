/** What every client command shares: flag values, the server URL, output, a client, job waiting. */
import { SnapError } from '../util/errors.js';

export type Values = Record<string, string | boolean | undefined>;

const DEFAULT_SERVER = 'http://127.0.0.1:7420';

export function serverUrl(v: Values): string {
  return (v.server as string | undefined) ?? process.env.SNAPCLONE_SERVER ?? DEFAULT_SERVER;
}

export function out(v: Values, json: unknown, human: string): void {
  process.stdout.write(v.json ? `${JSON.stringify(json)}\n` : human);
}

export function oneArg(args: string[], what: string, cmd: string): string {
  if (args.length !== 1) throw new SnapError('usage', `${cmd} takes exactly one ${what} (see snapclone help ${cmd})`);
  return args[0]!;
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
  commit: string | null;
}

export async function waitJob(c: Client, job: JobView, label: string): Promise<JobView> {
  const tty = process.stderr.isTTY === true;
  let last = '';
  while (job.state === 'queued' || job.state === 'running') {
    const line = `${label}: ${job.phase || job.state}`;
    if (tty && line !== last) process.stderr.write(`\r\x1b[K${line}`);
    last = line;
    await new Promise((r) => setTimeout(r, 250));
    job = (await c.json('GET', `/v1/jobs/${job.id}`)).json as unknown as JobView;
  }
  if (tty) process.stderr.write('\r\x1b[K');
  if (job.state === 'failed') throw new SnapError('build-failed', `build failed: ${job.error ?? 'unknown error'}`);
  return job;
}
