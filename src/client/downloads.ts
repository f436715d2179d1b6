/**
 * The `downloads` field of a resolve answer: where each artifact can be fetched
 * straight from the object store (presigned URLs), and until when. It is
 * untrusted input like the rest of the answer: checked here before anything
 * is fetched from it, and again against the manifest once that has arrived.
 */
import { SnapError } from '../util/errors.js';
import { isDigest } from '../util/hash.js';
import { LIMITS, manifestArtifacts, type Manifest } from '../clonepack/manifest.js';
import { quoted } from '../clonepack/paths.js';

export interface Downloads {
  /** Milliseconds since the epoch after which the URLs are no longer used. */
  expiresAt: number;
  /** Absolute http(s) URL by artifact digest. */
  urls: Map<string, URL>;
}

/** A manifest names at most this many artifacts (its table, two per pack, its chunks), plus itself. */
const MAX_URLS = 1 + 1 + 4 * LIMITS.maxPacks + LIMITS.maxChunks;
/** Presigned URLs run to a few KiB with session tokens; beyond this one is not a URL we will request. */
const MAX_URL_CHARS = 16 * 1024;
/** All URLs together: bounds what a hostile answer makes the client hold. */
const MAX_TOTAL_CHARS = 64 * 2 ** 20;

function bad(what: string): SnapError {
  return new SnapError('invalid', `server sent a malformed resolve answer (downloads: ${what})`);
}

/** `downloads`: absent or null (the server proxies every artifact), else {expiresAt, urls}, checked strictly. */
export function parseDownloads(v: unknown): Downloads | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad('not an object');
  const { expiresAt, urls, ...rest } = v as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length > 0) throw bad(`unknown field ${quoted(extra[0]!, 40)}`);
  if (typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt) || expiresAt < 0) throw bad('expiresAt is not a time in ms since the epoch');
  if (typeof urls !== 'object' || urls === null || Array.isArray(urls)) throw bad('urls is not an object');
  const entries = Object.entries(urls as Record<string, unknown>);
  if (entries.length > MAX_URLS) throw bad(`${entries.length} URLs, more than a manifest can name`);
  const out = new Map<string, URL>();
  let total = 0;
  for (const [digest, raw] of entries) {
    if (!isDigest(digest)) throw bad(`key ${quoted(digest, 80)} is not a SHA-256 digest`);
    const short = digest.slice(0, 12);
    if (typeof raw !== 'string') throw bad(`the URL of ${short} is not a string`);
    if (raw.length > MAX_URL_CHARS) throw bad(`the URL of ${short} is longer than ${MAX_URL_CHARS} characters`);
    total += raw.length;
    if (total > MAX_TOTAL_CHARS) throw bad('the URLs are too large together');
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw bad(`the URL of ${short} is not an absolute URL`);
    }
    // Never shown: a presigned URL's query is a credential. Its protocol and origin are not.
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw bad(`the URL of ${short} is ${u.protocol.slice(0, 20)}, not http or https`);
    if (u.username || u.password) throw bad(`the URL of ${short} holds a user name or password`);
    out.set(digest, u);
  }
  return { expiresAt, urls: out };
}

/**
 * Every URL must be for the manifest or an artifact it names: a server that
 * hands out others is confused or hostile, and the clone stops (nothing else
 * than the manifest has been fetched by then).
 */
export function checkDownloadsMatch(d: Downloads, manifestDigest: string, m: Manifest): void {
  const named = new Set(manifestArtifacts(m).map((a) => a.digest));
  named.add(manifestDigest);
  for (const digest of d.urls.keys())
    if (!named.has(digest)) throw bad(`a URL for ${digest.slice(0, 12)}, which the manifest does not name`);
}

/**
 * `signed` of a resolve answer: the query that makes the server serve this
 * manifest's artifacts (private repositories), `m=<manifest digest>&exp=<ms>&sig=<hex>`
 * and nothing else, for the manifest resolve named; absent or null: none.
 */
export function parseSigned(v: unknown, manifestDigest: string): { query: string; expiresAt: number } | null {
  if (v === undefined || v === null) return null;
  const bad = (what: string) => new SnapError('invalid', `server sent a malformed resolve answer (signed: ${what})`);
  if (typeof v !== 'object' || Array.isArray(v)) throw bad('not an object');
  const { query, expiresAt, ...rest } = v as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length > 0) throw bad(`unknown field ${JSON.stringify(extra[0]!.slice(0, 40))}`);
  if (typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt) || expiresAt < 0) throw bad('expiresAt is not a time in ms since the epoch');
  if (typeof query !== 'string' || query.length > 1024) throw bad('query is not a string');
  const m = /^m=([0-9a-f]{64})&exp=(\d{1,16})&sig=([0-9a-f]{16,128})$/.exec(query);
  if (!m) throw bad('query is not m=<digest>&exp=<ms>&sig=<hex>');
  if (m[1] !== manifestDigest) throw bad('query is for another manifest');
  return { query, expiresAt };
}
