/**
 * Whether a repository being registered is public or private (CONTRACTS: private repositories).
 * Given explicitly, that is it. Otherwise: a local path or file:// URL is public (whoever
 * reaches the server reads what its disk holds); an http(s) upstream is asked anonymously
 * (probe.ts): readable means public, 401/403 means private, anything else is refused; other
 * transports (ssh, git, scp-like) cannot be asked without credentials, so they must say.
 */
import { isAbsolute } from 'node:path';
import type { RepoVisibility } from '../../metadata/metadata-store.js';
import { SnapError } from '../../util/errors.js';
import { redactUrl } from '../../util/redact.js';
import { isHttpUpstream, probeInfoRefs } from './probe.js';

export const VISIBILITIES: readonly RepoVisibility[] = ['public', 'private'];

/** A request body's `visibility`: undefined when absent, else 'public' | 'private' or a usage error. */
export function parseVisibility(v: unknown): RepoVisibility | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string' && (VISIBILITIES as readonly string[]).includes(v)) return v as RepoVisibility;
  throw new SnapError('usage', `"visibility" must be "public" or "private", got ${JSON.stringify(v)}`);
}

export async function determineVisibility(url: string, given: RepoVisibility | undefined, timeoutMs?: number): Promise<RepoVisibility> {
  if (given) return given;
  if (isAbsolute(url) || /^file:\/\//i.test(url)) return 'public';
  const shown = redactUrl(url);
  if (!isHttpUpstream(url)) throw cannotTell(shown, 'only http(s) upstreams can be asked anonymously');
  const answer = await probeInfoRefs(url, null, timeoutMs);
  switch (answer.kind) {
    case 'readable':
      return 'public';
    case 'refused':
      return 'private';
    default:
      throw cannotTell(shown, answer.why);
  }
}

function cannotTell(url: string, why: string): SnapError {
  return new SnapError('invalid', `cannot determine whether ${url} is public: ${why}; pass visibility ("public" or "private"; snapclone add --visibility)`);
}
