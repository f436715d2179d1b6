/**
 * Signed artifact access (CONTRACTS: private repositories). A resolve answer carries
 * `signed.query` = `m=<manifest>&exp=<ms>&sig=<hex HMAC-SHA256(key, "<manifest>\n<exp>")>`;
 * an artifact GET/HEAD or report with it is served when the signature is right, it has not
 * expired, and the artifact is the manifest or one it names. Without a query, an artifact in
 * the private-artifact index is refused: private bytes are never reachable by digest alone.
 * Several servers accept each other's queries when they share the key (SNAPCLONE_URL_KEY).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ArtifactStore } from '../../storage/artifact-store.js';
import type { MetadataStore } from '../../metadata/metadata-store.js';
import { manifestArtifacts, parseManifest } from '../../clonepack/manifest.js';
import { SnapError } from '../../util/errors.js';
import { isDigest } from '../../util/hash.js';
import { AccessDenied } from './upstream-auth.js';

export interface SignedAccess {
  query: string;
  expiresAt: number;
}

/** The key: SNAPCLONE_URL_KEY, else derived from the admin token's hash, else random for this process. */
export function urlKeyFrom(env: NodeJS.ProcessEnv, adminTokenHash: Buffer | null): Buffer {
  const given = env.SNAPCLONE_URL_KEY;
  if (given !== undefined && given !== '') {
    if (given.length < 16) throw new SnapError('usage', 'SNAPCLONE_URL_KEY must be at least 16 characters');
    return createHash('sha256').update(`snapclone url key\n${given}`).digest();
  }
  // Not the hash itself: a signature then tells nothing about the token's hash.
  if (adminTokenHash) return createHmac('sha256', adminTokenHash).update('snapclone signed artifact URLs').digest();
  return randomBytes(32);
}

/** SNAPCLONE_URL_SECONDS: how long a signed query is good for (default 3600, 60..604800). */
export function urlSecondsFrom(env: NodeJS.ProcessEnv): number {
  const raw = env.SNAPCLONE_URL_SECONDS;
  const s = raw === undefined || raw === '' ? 3600 : Number(raw);
  if (!Number.isInteger(s) || s < 60 || s > 604_800) throw new SnapError('usage', `SNAPCLONE_URL_SECONDS must be an integer from 60 to 604800, got ${raw}`);
  return s;
}

/** Manifests whose artifact sets are remembered (each a few hundred digests). */
const LISTS = 1024;

export class ArtifactSigner {
  readonly #sets = new Map<string, Set<string>>();

  constructor(
    private readonly key: Buffer,
    private readonly seconds: number,
    private readonly store: Pick<ArtifactStore, 'read'>,
    private readonly now: () => number = Date.now,
  ) {}

  sign(manifest: string): SignedAccess {
    const expiresAt = this.now() + this.seconds * 1000;
    return { query: `m=${manifest}&exp=${expiresAt}&sig=${this.#mac(manifest, expiresAt)}`, expiresAt };
  }

  #mac(manifest: string, exp: number): string {
    return createHmac('sha256', this.key).update(`${manifest}\n${exp}`).digest('hex');
  }

  /** Whether the query carries a signature at all (any of its parameters). */
  static present(q: URLSearchParams): boolean {
    return q.has('sig') || q.has('m') || q.has('exp');
  }

  /** Throws AccessDenied (403) unless `q` is a valid, unexpired signature covering `digest`. */
  async verify(digest: string, q: URLSearchParams): Promise<void> {
    const m = q.get('m') ?? '';
    const expText = q.get('exp') ?? '';
    const sig = q.get('sig') ?? '';
    const exp = Number(expText);
    if (!isDigest(m) || !/^\d{1,16}$/.test(expText) || !/^[0-9a-f]{64}$/.test(sig)) throw denied('a malformed signed query');
    const want = Buffer.from(this.#mac(m, exp), 'hex');
    if (!timingSafeEqual(want, Buffer.from(sig, 'hex'))) throw denied('a bad signature');
    if (exp <= this.now()) throw denied('an expired signed query (resolve again)');
    if (digest === m) return;
    if (!(await this.#artifactsOf(m)).has(digest)) throw denied('a signed query for another manifest');
  }

  async #artifactsOf(manifest: string): Promise<Set<string>> {
    let set = this.#sets.get(manifest);
    if (!set) {
      let bytes: Buffer;
      try {
        bytes = await this.store.read(manifest);
      } catch {
        throw denied('a signed query for a manifest this server does not have');
      }
      set = new Set(manifestArtifacts(parseManifest(bytes)).map((a) => a.digest));
      if (this.#sets.size >= LISTS) this.#sets.delete(this.#sets.keys().next().value!);
      this.#sets.set(manifest, set);
    }
    return set;
  }
}

function denied(what: string): AccessDenied {
  return new AccessDenied(403, `artifact access refused: ${what}`, null);
}

/**
 * Marks a private repository's manifest and every artifact it names in the private-artifact
 * index before the manifest is handed out (once per manifest and process: marks are permanent).
 */
export class PrivateMarks {
  readonly #done = new Set<string>();

  constructor(
    private readonly meta: Pick<MetadataStore, 'markPrivateArtifacts'>,
    private readonly store: Pick<ArtifactStore, 'read'>,
  ) {}

  async mark(manifest: string): Promise<void> {
    if (this.#done.has(manifest)) return;
    const m = parseManifest(await this.store.read(manifest));
    await this.meta.markPrivateArtifacts([manifest, ...new Set(manifestArtifacts(m).map((a) => a.digest))]);
    if (this.#done.size >= 100_000) this.#done.clear();
    this.#done.add(manifest);
  }
}

export const UNSIGNED_PRIVATE = 'artifacts of private repositories need a signed URL: resolve first';

/** The gate in front of artifact GET/HEAD/report. */
export async function requireArtifactAccess(
  signer: ArtifactSigner,
  meta: Pick<MetadataStore, 'isPrivateArtifact'>,
  digest: string,
  q: URLSearchParams,
): Promise<void> {
  if (!isDigest(digest)) return; // the handler answers 400
  if (ArtifactSigner.present(q)) {
    try {
      return await signer.verify(digest, q);
    } catch (err) {
      // The query matters only for private bytes: a public artifact under a query this process
      // cannot check (signed before a restart with a per-process key, or by another server) still serves.
      if (await meta.isPrivateArtifact(digest)) throw err;
      return;
    }
  }
  if (await meta.isPrivateArtifact(digest)) throw new AccessDenied(403, UNSIGNED_PRIVATE, null);
}
