/**
 * Registering an upstream whose visibility the server cannot determine by itself (ssh://, the
 * gated and held upstreams, https URLs rewritten to local repositories by insteadOf): the
 * tests say it is public, as `snapclone add --visibility public` would.
 */
import { call, waitJob } from './helpers.js';

/** Register `url` as public and wait for its first build to succeed (helpers.ts addAndBuild, with visibility). */
export async function addPublicAndBuild(base: string, url: string, name: string, headers: Record<string, string> = {}): Promise<any> {
  const add = await call(base, 'POST', '/v1/repos', { url, name, visibility: 'public' }, headers);
  if (add.status !== 201) throw new Error(`add answered ${add.status}: ${add.text}`);
  const job = await waitJob(base, add.json.job.id);
  if (job.state !== 'succeeded') throw new Error(`first build failed: ${job.error}`);
  return job;
}
