/**
 * Resolve NAME + ref to a manifest for a clone mode. The server answers with
 * the newest commit built for a mode serving the request (saying so when a
 * newer one is building), or 202 when nothing was ever built for it: then we
 * follow the job, at the pace the server hints, and ask again until the
 * deadline. The answer may say where to fetch the artifacts straight from the
 * object store (`downloads`, checked in downloads.ts); `proxy` asks the server
 * not to, and any it sends anyway is ignored. `signed` (private repositories)
 * is the query every artifact request of the clone carries. `inline=1` asks
 * for the manifest's bytes (and a small table's) in the answer, saving two
 * round trips; servers that predate it send none and the clone fetches them.
 */
import { failedJobError, type ServerClient } from './http.js';
import { SnapError, integrityError } from '../util/errors.js';
import { isDigest, isOid, sha256Hex } from '../util/hash.js';
import { LIMITS, MANIFEST_MODES, type ManifestMode } from '../clonepack/manifest.js';
import { parseDownloads, parseSigned, type Downloads } from './downloads.js';
import { resolvePath } from './first-answer.js';

/** A build of a newer commit of the ref that the server is still running (commit null: not known yet). */
export interface NewerBuild {
  commit: string | null;
  job: number | null;
}

export interface Resolved {
  repo: string;
  upstream: string;
  ref: string;
  commit: string | null;
  /** The manifest's mode as the server states it; undefined from servers that predate modes. */
  mode: ManifestMode | undefined;
  manifest: { digest: string; size: number };
  newer: NewerBuild | null;
  /** Object-store URLs for the manifest and its artifacts; null: all from the server (always with `proxy`). */
  downloads: Downloads | null;
  /** The query that opens this manifest's artifacts on the server (private repositories); null: none needed. */
  signed: { query: string; expiresAt: number } | null;
  /**
   * Artifacts the answer carried inline, saving round trips: the manifest's
   * bytes (already checked against `manifest`'s digest and size) and, for
   * small trees, the file table's (checked by the caller against the
   * manifest's table entry with checkInlineArtifact). null: fetch them.
   */
  inline: { manifest: Buffer; table: Buffer | null } | null;
}

export interface ResolveOptions {
  /** What the clone needs: shallow (--depth 1), files (the whole archive), full. */
  mode: ManifestMode;
  timeoutMs: number;
  onWait?: (line: string) => void;
  /** Every artifact through the server (--proxy): sends proxy=1 and ignores `downloads`. */
  proxy?: boolean;
}

/** Bounds on the pause between polls: a server's hint is taken within them. */
export const POLL_MIN_MS = 200;
export const POLL_MAX_MS = 5_000;
const POLL_DEFAULT_MS = 300;

export async function resolveRef(client: ServerClient, name: string, ref: string, opts: ResolveOptions): Promise<Resolved> {
  const started = Date.now();
  const deadline = started + opts.timeoutMs;
  const path = resolvePath(name, ref, opts.mode, opts.proxy === true);
  const what = `${name}${ref ? ` ${ref}` : ''} (${opts.mode})`;
  const timedOut = () =>
    new SnapError('timeout', `the server was still building ${what} after ${Math.round((Date.now() - started) / 1000)} s; try again later or raise --timeout`);
  const pause = async (ms: number) => {
    const left = deadline - Date.now();
    if (left <= 0) throw timedOut();
    await new Promise((r) => setTimeout(r, Math.min(ms, left)));
  };
  let finishedJob: number | null = null;
  // The server is always asked at least once: a timeout of 0 means "do not
  // wait", not "do not ask" (and the answer must not depend on a clock tick).
  for (let asked = false; ; asked = true) {
    if (asked && Date.now() > deadline) throw timedOut();
    const { status, json, headers } = await client.json('GET', path);
    if (status === 200) return checkResolved(json, opts.proxy === true);
    if (status !== 202) throw new SnapError('invalid', `unexpected answer ${status} from resolve`);
    const jobId = jobIdOf(json.job);
    const delay = pollDelayMs(json.retryAfter, headers['retry-after']);
    // No job to follow, or one that already ended without the answer changing: resolve is the poll.
    if (jobId === null || jobId === finishedJob) {
      opts.onWait?.(`waiting for the server to build ${what}`);
      await pause(delay);
      continue;
    }
    for (;;) {
      const { json: j } = await client.json('GET', `/v1/jobs/${jobId}`);
      if (j.state === 'failed') throw failedJobError(j, `the server's build of ${name}`);
      if (j.state === 'succeeded') break;
      // The server's words, shown only if they are text, and on one line.
      const phase = [j.phase, j.state].find((v): v is string => typeof v === 'string' && v !== '') ?? 'unknown state';
      opts.onWait?.(`waiting for the server to build ${what}: ${phase.replace(/[\x00-\x1f\x7f-\x9f]+/g, ' ')}`);
      await pause(delay);
    }
    finishedJob = jobId;
  }
}

/**
 * A lookup the clone can do without: the manifest built for `mode`, or null
 * when none is (204 from the server; 202 from servers that predate `peek=1`:
 * no job followed). One request: no 429 wait, no poll.
 */
export async function peekResolve(client: ServerClient, name: string, ref: string, opts: { mode: ManifestMode; proxy?: boolean }): Promise<Resolved | null> {
  const { status, json } = await client.json('GET', resolvePath(name, ref, opts.mode, opts.proxy === true, true), undefined, { waitOn429: false });
  if (status === 200) return checkResolved(json, opts.proxy === true);
  if (status === 204 || status === 202) return null;
  throw new SnapError('invalid', `unexpected answer ${status} from resolve`);
}

/**
 * The pause between polls: the server's retryAfter (seconds, in the body) or
 * Retry-After header (delta-seconds), bounded so that a hostile or confused
 * server can neither make the client spin nor stall it past its deadline's use.
 */
export function pollDelayMs(retryAfter: unknown, header: string | string[] | undefined): number {
  const fromHeader = typeof header === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(header) ? Number(header) : NaN;
  const seconds = typeof retryAfter === 'number' && Number.isFinite(retryAfter) ? retryAfter : fromHeader;
  if (!Number.isFinite(seconds)) return POLL_DEFAULT_MS;
  return Math.min(POLL_MAX_MS, Math.max(POLL_MIN_MS, Math.round(seconds * 1000)));
}

/** The job of a 202: a job view ({id, ...}, as servers send it), a bare id, or none. */
function jobIdOf(job: unknown): number | null {
  if (job === null || job === undefined) return null;
  const id = typeof job === 'object' ? (job as { id?: unknown }).id : job;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) throw new SnapError('invalid', 'server sent a malformed resolve answer (job)');
  return id;
}

function checkResolved(j: Record<string, unknown>, proxy: boolean): Resolved {
  const m = j.manifest as { digest?: unknown; size?: unknown } | undefined;
  const bad = (what: string) => new SnapError('invalid', `server sent a malformed resolve answer (${what})`);
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
    throw bad('repo, upstream, ref, commit or manifest');
  if (j.mode !== undefined && !MANIFEST_MODES.includes(j.mode as ManifestMode)) throw bad('mode');
  return {
    repo: j.repo,
    upstream: j.upstream,
    ref: j.ref,
    commit: j.commit as string | null,
    mode: j.mode as ManifestMode | undefined,
    manifest: { digest: m.digest, size: m.size },
    newer: checkNewer(j.newer, bad),
    downloads: proxy ? null : parseDownloads(j.downloads),
    signed: parseSigned(j.signed, m.digest),
    inline: checkInline(j.inline, { digest: m.digest, size: m.size }, bad),
  };
}

/** Largest inline table accepted (decoded): far above any server's default (256 KiB), far below what would strain memory. */
export const INLINE_TABLE_MAX = 16 * 2 ** 20;

/**
 * `inline`: absent or null (fetch both), else {manifest: base64, table?: base64 | null}.
 * Malformed base64 or a field longer than its bytes may be is refused as invalid before
 * anything is decoded; the manifest's bytes must then be the ones resolve named (integrity).
 */
function checkInline(v: unknown, manifest: { digest: string; size: number }, bad: (what: string) => Error): Resolved['inline'] {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad('inline');
  const { manifest: mText, table: tText, ...rest } = v as Record<string, unknown>;
  if (Object.keys(rest).length > 0) throw bad('inline');
  const bytes = decodeBase64(mText, manifest.size, () => bad('inline.manifest'));
  const table = tText === undefined || tText === null ? null : decodeBase64(tText, INLINE_TABLE_MAX, () => bad('inline.table'));
  return { manifest: checkInlineArtifact(bytes, manifest), table };
}

/** Canonical base64 (padded, no whitespace) of at most `maxBytes` bytes, decoded. */
function decodeBase64(v: unknown, maxBytes: number, bad: () => Error): Buffer {
  if (typeof v !== 'string' || v.length % 4 !== 0 || v.length > Math.ceil(maxBytes / 3) * 4) throw bad();
  const out = Buffer.from(v, 'base64');
  // Node's decoder skips what is not base64: only canonical text encodes back to itself. (A regex
  // test of the alphabet took 8 ms on git/git's 470 KiB; this round trip under 1 ms.)
  if (out.toString('base64') !== v) throw bad();
  return out;
}

/** The bytes if they are the artifact's (size and SHA-256), else an integrity error (exit 6). */
export function checkInlineArtifact(bytes: Buffer, a: { digest: string; size: number }): Buffer {
  if (bytes.length !== a.size) throw integrityError(`the resolve answer's inline copy of ${a.digest} is ${bytes.length} bytes, not ${a.size}`);
  if (sha256Hex(bytes) !== a.digest) throw integrityError(`the resolve answer's inline copy of ${a.digest} does not match its SHA-256`);
  return bytes;
}

/** `newer`: absent or null (nothing newer building; old servers send neither), else {commit: oid | null, job: id | null}. */
function checkNewer(v: unknown, bad: (what: string) => Error): NewerBuild | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad('newer');
  const { commit, job, ...rest } = v as Record<string, unknown>;
  if (Object.keys(rest).length > 0) throw bad('newer');
  if (!(commit === null || isOid(commit))) throw bad('newer.commit');
  if (!(job === null || (typeof job === 'number' && Number.isSafeInteger(job) && job >= 0))) throw bad('newer.job');
  return { commit: commit as string | null, job: job as number | null };
}
