/**
 * GET/HEAD /v1/artifacts/<sha256>: immutable bytes, so a strong ETag equal to
 * the digest, a year of caching, and single byte ranges (RFC 9110). Streams
 * from the store without buffering whole artifacts, hashing each artifact's
 * first whole read (see integrity.ts); an absent or quarantined artifact is a
 * 404 with code artifact-missing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { isDigest, sha256Hex } from '../util/hash.js';
import { log } from '../util/log.js';
import { sendJson } from './http-util.js';
import type { HotArtifactCache } from './hot-cache.js';
import type { ArtifactIntegrity } from './integrity.js';

export type Range = { start: number; end: number } | 'unsatisfiable' | null;

/** Parse a Range header for a resource of `size` bytes. null = serve the whole thing. */
export function parseRange(header: string | undefined, size: number): Range {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null; // multi-range or malformed: ignore, send 200
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}

/** What serving artifacts needs: the store, its integrity bookkeeping, and the hot cache if any. */
export interface ArtifactSource {
  store: ArtifactStore;
  integrity: ArtifactIntegrity;
  hot?: HotArtifactCache | undefined;
}

const EMPTY_DIGEST = sha256Hex('');
const PROBLEMS = ['digest-mismatch', 'truncated', 'missing'];

export async function serveArtifact(src: ArtifactSource, digest: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { store, integrity, hot } = src;
  if (!isDigest(digest)) return sendJson(res, 400, { error: 'artifact id must be a lowercase hex SHA-256', code: 'invalid' });
  let info = await store.stat(digest);
  if (!info) return sendMissing(res, digest);
  if (info.size === 0 && digest !== EMPTY_DIGEST) {
    // Nothing to stream and hash: an empty file under another digest is a truncated artifact.
    // Checked as any mismatch is (a second read, then only that copy is quarantined): a
    // rebuild's put may be storing the good bytes right now.
    if ((await integrity.check(digest)) !== 'intact') return sendMissing(res, digest);
    info = await store.stat(digest);
    if (!info || info.size === 0) return sendMissing(res, digest);
  }
  const etag = `"${digest}"`;
  const headers: Record<string, string | number> = {
    etag,
    // A signed read may be of a private repository's bytes: no shared cache (a CDN that ignores
    // the query) may keep it for the next caller. Unsigned reads are public bytes (private ones need the query).
    'cache-control': `${(req.url ?? '').includes('?') ? 'private' : 'public'}, max-age=31536000, immutable`,
    'accept-ranges': 'bytes',
    'content-type': 'application/octet-stream',
  };
  const inm = req.headers['if-none-match'];
  // If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
  if (inm && inm.split(',').some((t) => t.trim().replace(/^W\//, '') === etag || t.trim() === '*')) {
    res.writeHead(304, headers);
    return void res.end();
  }
  let range = parseRange(req.headers.range, info.size);
  const ifRange = req.headers['if-range'];
  if (range && ifRange && ifRange !== etag) range = null; // a different version: send it whole
  if (range === 'unsatisfiable') {
    res.writeHead(416, { ...headers, 'content-range': `bytes */${info.size}` });
    return void res.end();
  }
  const status = range ? 206 : 200;
  const start = range ? range.start : 0;
  const end = range ? range.end : info.size - 1;
  headers['content-length'] = Math.max(0, end - start + 1);
  if (range) headers['content-range'] = `bytes ${start}-${end}/${info.size}`;
  if (req.method === 'HEAD' || info.size === 0) {
    res.writeHead(status, headers);
    return void res.end();
  }
  // Everything that can fail as "missing" happens before the headers go out.
  const cached = hot ? await hot.get(digest, info.size) : null;
  if (cached) {
    res.writeHead(status, headers);
    return void res.end(range ? cached.subarray(start, end + 1) : cached);
  }
  // A whole read is not a range: the disk cache in front of S3 fills (and verifies) only on whole reads.
  const body = await store.open(digest, range ? { start, end } : undefined);
  res.writeHead(status, headers);
  if (integrity.isVerified(digest)) return pipeline(body, res);
  if (start === 0 && end === info.size - 1) return pipeline(body, integrity.verifying(digest), res);
  // A part cannot be verified on its own: hash the whole in the background instead.
  integrity.requestCheck(digest, 'first read was a byte range');
  await pipeline(body, res);
}

/**
 * POST /v1/artifacts/<sha256>/report {"problem"}: a client's download of this
 * artifact failed its checks. The stored copy is re-hashed in the background
 * (rate-limited per artifact and by a budget shared by all reports, see
 * integrity.ts) and quarantined if bad. A digest not stored is a 404.
 */
export async function reportArtifact(src: ArtifactSource, digest: string, body: Record<string, unknown>, res: ServerResponse): Promise<void> {
  if (!isDigest(digest)) return sendJson(res, 400, { error: 'artifact id must be a lowercase hex SHA-256', code: 'invalid' });
  const problem = body.problem;
  if (typeof problem !== 'string' || !PROBLEMS.includes(problem)) {
    return sendJson(res, 400, { error: `body needs "problem": one of ${PROBLEMS.join(', ')}`, code: 'invalid' });
  }
  // Nothing stored (never was, or quarantined already): nothing to check, and nothing to log
  // for whoever posts random digests.
  const info = await src.store.stat(digest);
  if (!info) return sendMissing(res, digest);
  if (src.integrity.requestReportedCheck(digest, info.size, `a client reported ${problem}`)) log.warn(`a client reports artifact ${digest}: ${problem}; checking the stored copy`);
  sendJson(res, 202, { status: 'checking' });
}

function sendMissing(res: ServerResponse, digest: string): void {
  sendJson(res, 404, { error: `the server has no intact copy of artifact ${digest}`, code: 'artifact-missing' });
}
