/** The commands behind the CLI. Server code is imported only by `serve`. */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { SnapError } from '../util/errors.js';
import { formatBytes } from '../util/format.js';

type Values = Record<string, string | boolean | undefined>;

const DEFAULT_SERVER = 'http://127.0.0.1:7420';

function serverUrl(v: Values): string {
  return (v.server as string | undefined) ?? process.env.SNAPCLONE_SERVER ?? DEFAULT_SERVER;
}

function out(v: Values, json: unknown, human: string): void {
  process.stdout.write(v.json ? `${JSON.stringify(json)}\n` : human);
}

export async function run(cmd: string, v: Values, args: string[]): Promise<number> {
  switch (cmd) {
    case 'serve':
      return serve(v, args);
    case 'add':
      return add(v, args);
    case 'sync':
      return sync(v, args);
    case 'status':
      return status(v, args);
    case 'clone':
      return cloneCmd(v, args);
  }
  throw new SnapError('usage', `unknown command ${cmd}`);
}

function oneArg(args: string[], what: string, cmd: string): string {
  if (args.length !== 1) throw new SnapError('usage', `${cmd} takes exactly one ${what} (see snapclone help ${cmd})`);
  return args[0]!;
}

async function serve(v: Values, args: string[]): Promise<number> {
  if (args.length) throw new SnapError('usage', 'serve takes no arguments');
  const port = Number(v.port ?? 7420);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new SnapError('usage', `invalid --port ${String(v.port)}`);
  const concurrency = Number(v['build-concurrency'] ?? 1);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new SnapError('usage', '--build-concurrency must be a positive integer');
  const dataDir = resolve((v['data-dir'] as string | undefined) ?? process.env.SNAPCLONE_DATA_DIR ?? join(homedir(), '.local/share/snapclone'));
  const { startServer } = await import('../serve/server.js');
  const server = await startServer({
    host: (v.host as string | undefined) ?? '127.0.0.1',
    port,
    dataDir,
    adminToken: process.env.SNAPCLONE_ADMIN_TOKEN || undefined,
    buildConcurrency: concurrency,
  });
  await new Promise<void>((done) => {
    let stopping = false;
    const stop = () => {
      if (stopping) process.exit(130); // a second signal: do not wait for running builds
      stopping = true;
      process.stderr.write('snapclone: shutting down (waiting for running builds; signal again to stop now)\n');
      server.close().then(done, done);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}

type Client = InstanceType<typeof import('../client/http.js').ServerClient>;

/** Run `fn` with a client for the server the flags name, closing it afterwards. */
async function withClient<T>(v: Values, fn: (c: Client) => Promise<T>): Promise<T> {
  const { ServerClient } = await import('../client/http.js');
  const c = new ServerClient(serverUrl(v), { token: process.env.SNAPCLONE_TOKEN || undefined, connections: 2 });
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

interface JobView {
  id: number;
  state: string;
  phase: string;
  error: string | null;
  commit: string | null;
}

async function waitJob(c: Client, job: JobView, label: string): Promise<JobView> {
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

function upstreamArg(url: string): string {
  // A local path is sent as an absolute path: the server may run elsewhere in the filesystem.
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) || /^[^/]+@[^/]+:/.test(url) || isAbsolute(url)) return url;
  if (existsSync(url)) return resolve(url);
  return url;
}

async function add(v: Values, args: string[]): Promise<number> {
  const url = upstreamArg(oneArg(args, 'upstream URL', 'add'));
  return withClient(v, async (c) => {
    const { json } = await c.json('POST', '/v1/repos', { url, name: v.name });
    let job = json.job as JobView | null;
    if (job && !v['no-wait']) job = await waitJob(c, job, `building ${String(json.name)}`);
    const created = json.created === true;
    out(v, { name: json.name, url: json.url, created, job }, `${created ? 'added' : 'already registered'}: ${String(json.name)} (${String(json.url)})${job && !v['no-wait'] ? `, built ${job.commit ?? '(no commits)'}` : job ? `, build job ${job.id} ${job.state}` : ''}\n`);
    return 0;
  });
}

async function sync(v: Values, args: string[]): Promise<number> {
  const name = oneArg(args, 'repository name', 'sync');
  return withClient(v, async (c) => {
    const { json } = await c.json('POST', `/v1/repos/${encodeURIComponent(name)}/sync`, { branch: v.branch });
    let job = json.job as JobView;
    if (!v['no-wait']) job = await waitJob(c, job, `syncing ${name}`);
    out(v, { name, job }, v['no-wait'] ? `sync of ${name} queued as job ${job.id}\n` : `synced ${name}: ${job.commit ?? '(no commits)'}\n`);
    return 0;
  });
}


async function status(v: Values, args: string[]): Promise<number> {
  const name = oneArg(args, 'repository name', 'status');
  return withClient(v, async (c) => {
    const { json } = await c.json('GET', `/v1/repos/${encodeURIComponent(name)}`);
    if (v.json) return out(v, json, ''), 0;
    const refs = json.refs as { ref: string; commit: string | null; builtAt: number; sizes: { editable: number; shallow: number; files: number } }[];
    const jobs = json.jobs as (JobView & { ref: string | null; finishedAt: number | null })[];
    let text = `${String(json.name)}\n  upstream:       ${String(json.url)}\n  default branch: ${String(json.defaultBranch ?? '(unknown)')}\n`;
    text += refs.length ? '  built refs:\n' : '  built refs:     none yet\n';
    for (const r of refs)
      text += `    ${r.ref}  ${r.commit?.slice(0, 12) ?? '(empty)'}  built ${new Date(r.builtAt).toISOString()}  editable ${formatBytes(r.sizes.editable)}, depth 1 ${formatBytes(r.sizes.shallow)}, files ${formatBytes(r.sizes.files)}\n`;
    if (jobs.length) text += '  recent builds:\n';
    for (const j of jobs) text += `    #${j.id} ${j.ref ?? '(default and built refs)'} ${j.state}${j.state === 'running' ? ` (${j.phase})` : ''}${j.error ? `: ${j.error}` : ''}\n`;
    out(v, json, text);
    return 0;
  });
}

async function cloneCmd(v: Values, args: string[]): Promise<number> {
  if (args.length < 1 || args.length > 2) throw new SnapError('usage', 'clone takes NAME and an optional DIR (see snapclone help clone)');
  const name = args[0]!;
  const dir = args[1] ?? name.split('/').pop()!;
  const mode = (v.mode as string | undefined) ?? 'editable';
  if (mode !== 'editable' && mode !== 'files') throw new SnapError('usage', `--mode must be editable or files, not ${mode}`);
  let depth: number | undefined;
  if (v.depth !== undefined) {
    depth = Number(v.depth);
    if (depth !== 1) throw new SnapError('usage', '--depth supports only 1');
  }
  const { clone } = await import('../client/clone.js');
  const { Progress } = await import('../client/progress.js');
  const result = await clone({
    server: serverUrl(v),
    token: process.env.SNAPCLONE_TOKEN || undefined,
    name,
    dir,
    branch: v.branch as string | undefined,
    depth,
    mode,
    progress: new Progress(process.stderr.isTTY === true && !v.json),
  });
  if (v.bench) process.stderr.write(benchReport(result));
  if (v.json) out(v, result, '');
  return 0;
}

/** --bench: per-phase time, then the timeline of when each step ended. */
function benchReport(r: import('../client/clone.js').CloneResult): string {
  const p = r.phases;
  const mib = r.bytesDownloaded / 2 ** 20;
  const rate = p.download > 0 ? ` (${(mib / (p.download / 1000)).toFixed(0)} MiB/s)` : '';
  const rows: [string, number, string][] = [
    ['resolve', p.resolve, 'wall'],
    ['download', p.download, `wall, ${mib.toFixed(1)} MiB${rate}`],
    ['verify', p.verify, 'SHA-256 of artifacts + SHA-1 of blobs, all threads'],
    ['inflate', p.inflate, 'zlib/zstd, all writers'],
    ['write', p.write, `mkdir + files, ${r.writerThreads ? `all ${r.writerThreads} writer threads` : 'on the main thread'}, ${r.files} files`],
    ['index', p.index, 'wall: .git/index, refs, config'],
    ['rename', p.rename, 'wall'],
    ['total', r.timings.total!, `wall, plus ${r.timings.startup} ms process start-up`],
  ];
  const lines = rows.map(([k, ms, note]) => `${k.padEnd(9)} ${String(ms).padStart(7)} ms  ${note}`);
  const timeline = Object.entries(r.timings)
    .filter(([k]) => k !== 'startup' && k !== 'total')
    .map(([k, ms]) => `${k} ${ms}`)
    .join(', ');
  return `${lines.join('\n')}\ntimeline (ms since start): ${timeline}\npeak RSS ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB\n`;
}

