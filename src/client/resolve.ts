/**
 * Resolve NAME + ref to a manifest. While the server is still building it
 * answers 202 with the job; we follow the job and ask again.
 */
import { failedJobError, type ServerClient } from './http.js';
import { SnapError } from '../util/errors.js';
import { isDigest, isOid } from '../util/hash.js';
import { LIMITS } from '../clonepack/manifest.js';

export interface Resolved {
  repo: string;
  upstream: string;
  ref: string;
  commit: string | null;
  manifest: { digest: string; size: number };
}

export async function resolveRef(
  client: ServerClient,
  name: string,
  ref: string,
  opts: { timeoutMs: number; onWait?: (phase: string) => void },
): Promise<Resolved> {
  const deadline = Date.now() + opts.timeoutMs;
  const path = `/v1/repos/${encodeURIComponent(name)}/resolve?ref=${encodeURIComponent(ref)}`;
  for (;;) {
    const { status, json } = await client.json('GET', path);
    if (status === 200) return checkResolved(json);
    const job = json.job as { id?: number; state?: string; phase?: string } | undefined;
    if (status !== 202 || !job || typeof job.id !== 'number') throw new SnapError('invalid', `unexpected answer ${status} from resolve`);
    // Follow the job until it ends, then resolve again.
    for (;;) {
      if (Date.now() > deadline) throw new SnapError('timeout', `the server is still building ${name}; try again later`);
      const { json: j } = await client.json('GET', `/v1/jobs/${job.id}`);
      opts.onWait?.(`waiting for the server to build ${name}: ${String(j.phase || j.state)}`);
      if (j.state === 'failed') throw failedJobError(j, `the server's build of ${name}`);
      if (j.state === 'succeeded') break;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
}

function checkResolved(j: Record<string, unknown>): Resolved {
  const m = j.manifest as { digest?: unknown; size?: unknown } | undefined;
  if (
    typeof j.repo !== 'string' ||
    typeof j.upstream !== 'string' ||
    typeof j.ref !== 'string' ||
    !(j.commit === null || isOid(j.commit)) ||
    !m ||
    !isDigest(m.digest) ||
    typeof m.size !== 'number' ||
    !Number.isSafeInteger(m.size) ||
    m.size < 0 ||
    m.size > LIMITS.maxManifestBytes
  )
    throw new SnapError('invalid', 'server sent a malformed resolve answer');
  return { repo: j.repo, upstream: j.upstream, ref: j.ref, commit: j.commit as string | null, manifest: { digest: m.digest, size: m.size } };
}
