/** Repository commands: add, sync, status, list, remove, set-url. */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { formatBytes } from '../util/format.js';
import { SnapError } from '../util/errors.js';
import { oneArg, out, repoName, waitJob, withClient, type JobView, type Values } from './common.js';

function upstreamArg(url: string): string {
  // A local path is sent as an absolute path: the server may run elsewhere in the filesystem.
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) || /^[^/]+@[^/]+:/.test(url) || isAbsolute(url)) return url;
  if (existsSync(url)) return resolve(url);
  return url;
}

export async function add(v: Values, args: string[]): Promise<number> {
  const url = upstreamArg(oneArg(args, 'upstream URL', 'add'));
  // An explicit --name is checked as given: '' is a mistake, not "use the default".
  if (v.name !== undefined) repoName(v.name as string);
  const visibility = v.visibility;
  if (visibility !== undefined && visibility !== 'public' && visibility !== 'private')
    throw new SnapError('usage', `--visibility must be public or private, got ${JSON.stringify(visibility)}`);
  return withClient(v, async (c) => {
    const { json } = await c.json('POST', '/v1/repos', { url, name: v.name, ...(visibility ? { visibility } : {}) });
    let job = json.job as JobView | null;
    if (job && !v['no-wait']) job = await waitJob(c, job, `building ${String(json.name)}`, v.quiet === true);
    const created = json.created === true;
    out(v, { name: json.name, url: json.url, visibility: json.visibility, created, job }, `${created ? 'added' : 'already registered'}: ${String(json.name)} (${String(json.url)}${json.visibility === 'private' ? ', private' : ''})${job && !v['no-wait'] ? `, built ${job.commit ?? '(no commits)'}` : job ? `, build job ${job.id} ${job.state}` : ''}\n`);
    return 0;
  });
}

export async function sync(v: Values, args: string[]): Promise<number> {
  const name = repoName(oneArg(args, 'repository name', 'sync'));
  return withClient(v, async (c) => {
    const { json } = await c.json('POST', `/v1/repos/${encodeURIComponent(name)}/sync`, { branch: v.branch });
    let job = json.job as JobView;
    if (!v['no-wait']) job = await waitJob(c, job, `syncing ${name}`, v.quiet === true);
    out(v, { name, job }, v['no-wait'] ? `sync of ${name} queued as job ${job.id}\n` : `synced ${name}: ${job.commit ?? '(no commits)'}\n`);
    return 0;
  });
}


export async function status(v: Values, args: string[]): Promise<number> {
  const name = repoName(oneArg(args, 'repository name', 'status'));
  return withClient(v, async (c) => {
    const { json } = await c.json('GET', `/v1/repos/${encodeURIComponent(name)}`);
    if (v.json) return out(v, json, ''), 0;
    const refs = json.refs as { ref: string; commit: string | null; builtAt: number; sizes: { editable: number; shallow: number; files: number } }[];
    const jobs = json.jobs as (JobView & { ref: string | null; finishedAt: number | null; attempts?: number })[];
    let text = `${String(json.name)}\n  upstream:       ${String(json.url)}\n  default branch: ${String(json.defaultBranch ?? '(unknown)')}\n`;
    text += refs.length ? '  built refs:\n' : '  built refs:     none yet\n';
    for (const r of refs)
      text += `    ${r.ref}  ${r.commit?.slice(0, 12) ?? '(empty)'}  built ${new Date(r.builtAt).toISOString()}  editable ${formatBytes(r.sizes.editable)}, depth 1 ${formatBytes(r.sizes.shallow)}, files ${formatBytes(r.sizes.files)}\n`;
    if (jobs.length) text += '  recent builds:\n';
    for (const j of jobs)
      text += `    #${j.id} ${j.ref ?? '(default and built refs)'} ${j.state}${j.state === 'running' ? ` (${j.phase})` : ''}${(j.attempts ?? 0) > 1 ? ` after ${j.attempts} attempts` : ''}${j.error ? `: ${j.error}` : ''}\n`;
    text += await garbageLine(c);
    out(v, json, text);
    return 0;
  });
}

/** The store's garbage (GET /v1/gc, admin only): a line for status, or nothing without the admin token. */
async function garbageLine(c: { json(method: string, path: string): Promise<{ json: Record<string, unknown> }> }): Promise<string> {
  try {
    const { json } = await c.json('GET', '/v1/gc');
    const u = json.unreachable as { count: number; bytes: number };
    const now = json.reclaimableNow as { count: number; bytes: number };
    return `  store garbage:  ${u.count} unreachable artifacts (${formatBytes(u.bytes)}), ${formatBytes(now.bytes)} reclaimable now (snapclone gc)\n`;
  } catch {
    return '';
  }
}

export async function list(v: Values, args: string[]): Promise<number> {
  if (args.length) throw new SnapError('usage', 'list takes no arguments (see snapclone help list)');
  return withClient(v, async (c) => {
    const { json } = await c.json('GET', '/v1/repos');
    const repos = (Array.isArray(json.repos) ? json.repos : []) as { name: string; url: string; defaultBranch?: string | null; visibility?: string }[];
    const width = Math.max(0, ...repos.map((r) => r.name.length));
    const text = repos.length
      ? repos.map((r) => `${r.name.padEnd(width)}  ${r.url}${r.defaultBranch ? `  (${r.defaultBranch})` : ''}${r.visibility === 'private' ? '  private' : ''}\n`).join('')
      : `no repositories registered on ${c.base}\n`;
    out(v, { repos }, text);
    return 0;
  });
}

export async function remove(v: Values, args: string[]): Promise<number> {
  const name = repoName(oneArg(args, 'repository name', 'remove'));
  return withClient(v, async (c) => {
    const { json } = await c.json('DELETE', `/v1/repos/${encodeURIComponent(name)}`);
    out(v, json, `removed ${String(json.name ?? name)} (${String(json.url)})\n`);
    return 0;
  });
}

export async function setUrl(v: Values, args: string[]): Promise<number> {
  if (args.length !== 2) throw new SnapError('usage', 'set-url takes NAME and URL (see snapclone help set-url)');
  const name = repoName(args[0]!);
  const url = upstreamArg(args[1]!);
  return withClient(v, async (c) => {
    const { json } = await c.json('PATCH', `/v1/repos/${encodeURIComponent(name)}`, { url });
    let job = (json.job ?? null) as JobView | null;
    if (job && !v['no-wait']) job = await waitJob(c, job, `building ${name} from ${String(json.url)}`, v.quiet === true);
    const built = job && !v['no-wait'] ? `, built ${job.commit ?? '(no commits)'}` : job ? `, build job ${job.id} ${job.state}` : '';
    out(v, { name: json.name ?? name, url: json.url, job }, `${String(json.name ?? name)} now fetches from ${String(json.url)}${built}\n`);
    return 0;
  });
}
