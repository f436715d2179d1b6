/**
 * The object ids of stored pack indexes, cached in-process by idx digest.
 *
 * A sync that adds a history level filters the new objects against every kept
 * level's idx; parsing the base level's idx on every push would cost time and
 * memory in proportion to the repository, not to the push. Stored idx files
 * are immutable (named by digest), so their ids can be kept: 20 bytes per
 * object, least recently used dropped beyond a byte bound.
 */
import type { ArtifactStore } from '../storage/artifact-store.js';
import { parseIdx } from '../git/idx.js';

/** 256 MiB: the ids of about 13 million objects. */
export const DEFAULT_IDX_CACHE_BYTES = 256 << 20;

/** Sorted 20-byte object ids of one idx. */
export class OidSet {
  constructor(readonly oids: Buffer) {}

  get count(): number {
    return this.oids.length / 20;
  }

  has(oid: Buffer): boolean {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = this.oids.compare(oid, 0, 20, mid * 20, mid * 20 + 20);
      if (c === 0) return true;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return false;
  }
}

export class IdxOidCache {
  readonly #entries = new Map<string, OidSet>(); // in use order, oldest first
  #bytes = 0;

  constructor(readonly maxBytes: number = DEFAULT_IDX_CACHE_BYTES) {}

  get bytes(): number {
    return this.#bytes;
  }

  /** The ids of the stored idx `digest`, read and parsed only when not cached. */
  async get(store: ArtifactStore, digest: string): Promise<OidSet> {
    const hit = this.#entries.get(digest);
    if (hit) {
      this.#entries.delete(digest);
      this.#entries.set(digest, hit);
      return hit;
    }
    // The store verified the idx against its digest on the way in: skip the SHA-1 pass.
    // Copy the ids out, so the cache does not keep the offsets and CRCs alive.
    const set = new OidSet(Buffer.from(parseIdx(await store.read(digest), { verifyChecksum: false }).oids));
    if (set.oids.length <= this.maxBytes) {
      this.#entries.set(digest, set);
      this.#bytes += set.oids.length;
      for (const [d, old] of this.#entries) {
        if (this.#bytes <= this.maxBytes) break;
        this.#entries.delete(d);
        this.#bytes -= old.oids.length;
      }
    }
    return set;
  }
}

/** The cache the build uses unless told otherwise (one per process). */
export const sharedIdxCache = new IdxOidCache();
