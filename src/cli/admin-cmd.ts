/** Admin and status commands: add, sync, status. */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { formatBytes } from '../util/format.js';
import { oneArg, out, waitJob, withClient, type JobView, type Values } from './common.js';

function upstreamArg(url: string): string {
  // A local path is sent as an absolute path: the server may run elsewhere in the filesystem.
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) || /^[^/]+@[^/]+:/.test(url) || isAbsolute(url)) return url;
  if (existsSync(url)) return resolve(url);
  return url;
}

export async function add(v: Values, args: string[]): Promise<number> {
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

export async function sync(v: Values, args: string[]): Promise<number> {
  const name = oneArg(args, 'repository name', 'sync');
  return withClient(v, async (c) => {
    const { json } = await c.json('POST', `/v1/repos/${encodeURIComponent(name)}/sync`, { branch: v.branch });
    let job = json.job as JobView;
    if (!v['no-wait']) job = await waitJob(c, job, `syncing ${name}`);
    out(v, { name, job }, v['no-wait'] ? `sync of ${name} queued as job ${job.id}\n` : `synced ${name}: ${job.commit ?? '(no commits)'}\n`);
    return 0;
  });
}


export async function status(v: Values, args: string[]): Promise<number> {
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
