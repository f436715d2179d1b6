/**
 * Presigned object-store URLs for a resolve answer (`downloads`): one per artifact the manifest
 * names, and the manifest itself, so clients fetch straight from the bucket and the server
 * only answers small JSON. URLs are reused while more than half their life is left: signing
 * is local work, but a git/git manifest names a few hundred artifacts.
 */
import type { ArtifactStore } from '../storage/artifact-store.js';
import { manifestArtifacts, parseManifest } from '../clonepack/manifest.js';
import { SnapError } from '../util/errors.js';

export interface DownloadUrls {
  /** When the earliest of the URLs expires, ms since the epoch. */
  expiresAt: number;
  urls: Record<string, string>;
}

/** Manifests whose artifact lists are remembered, and presigned URLs kept (each bounded). */
const LISTS = 1024;
const URLS = 200_000;

export class PresignedDownloads {
  readonly #lists = new Map<string, string[]>();
  readonly #urls = new Map<string, { url: string; expiresAt: number }>();

  constructor(
    private readonly store: Pick<ArtifactStore, 'read'> & { presign(digest: string, seconds: number): Promise<string> },
    private readonly seconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  async forManifest(manifest: string): Promise<DownloadUrls> {
    const digests = await this.#digests(manifest);
    const urls: Record<string, string> = {};
    let expiresAt = Infinity;
    const fresh = this.now() + (this.seconds * 1000) / 2;
    for (const d of digests) {
      let hit = this.#urls.get(d);
      if (!hit || hit.expiresAt < fresh) {
        const at = this.now() + this.seconds * 1000;
        hit = { url: await this.store.presign(d, this.seconds), expiresAt: at };
        if (this.#urls.size >= URLS) this.#urls.delete(this.#urls.keys().next().value!);
        this.#urls.delete(d);
        this.#urls.set(d, hit);
      }
      urls[d] = hit.url;
      expiresAt = Math.min(expiresAt, hit.expiresAt);
    }
    return { expiresAt, urls };
  }

  async #digests(manifest: string): Promise<string[]> {
    let list = this.#lists.get(manifest);
    if (!list) {
      const m = parseManifest(await this.store.read(manifest));
      list = [manifest, ...manifestArtifacts(m).map((a) => a.digest)];
      if (this.#lists.size >= LISTS) this.#lists.delete(this.#lists.keys().next().value!);
      this.#lists.set(manifest, list);
    }
    return list;
  }
}

/** Presigning on unless SNAPCLONE_S3_PRESIGN=0; URLs live SNAPCLONE_S3_PRESIGN_SECONDS (default 900, 60..604800). */
export function presignSecondsFromEnv(env: NodeJS.ProcessEnv): number | null {
  if (env.SNAPCLONE_S3_PRESIGN === '0' || env.SNAPCLONE_S3_PRESIGN === 'false') return null;
  const raw = env.SNAPCLONE_S3_PRESIGN_SECONDS;
  const s = raw === undefined || raw === '' ? 900 : Number(raw);
  if (!Number.isInteger(s) || s < 60 || s > 604_800) throw new SnapError('usage', `SNAPCLONE_S3_PRESIGN_SECONDS must be an integer from 60 to 604800, got ${raw}`);
  return s;
}
