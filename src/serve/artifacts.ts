/**
 * GET/HEAD /v1/artifacts/<sha256>: immutable bytes, so a strong ETag equal to
 * the digest, a year of caching, and single byte ranges (RFC 9110). Streams
 * from the store without buffering whole artifacts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { isDigest } from '../util/hash.js';
import { sendJson } from './http-util.js';
import type { HotArtifactCache } from './hot-cache.js';

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

export async function serveArtifact(store: ArtifactStore, digest: string, req: IncomingMessage, res: ServerResponse, hot?: HotArtifactCache): Promise<void> {
  if (!isDigest(digest)) return sendJson(res, 400, { error: 'artifact id must be a lowercase hex SHA-256', code: 'invalid' });
  const info = await store.stat(digest);
  if (!info) return sendJson(res, 404, { error: `no artifact ${digest}`, code: 'not-found' });
  const etag = `"${digest}"`;
  const headers: Record<string, string | number> = {
    etag,
    'cache-control': 'public, max-age=31536000, immutable',
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
  res.writeHead(status, headers);
  if (req.method === 'HEAD' || info.size === 0) return void res.end();
  const cached = hot ? await hot.get(digest, info.size) : null;
  if (cached) return void res.end(range ? cached.subarray(start, end + 1) : cached);
  await pipeline(await store.open(digest, { start, end }), res);
}
