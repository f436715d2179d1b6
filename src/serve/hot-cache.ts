/**
 * Hot artifacts in memory. Artifacts are immutable, so a cached copy never goes
 * stale; serving one skips the file read and its copy (one write syscall per
 * response instead of a read/write loop). LRU within a byte budget; concurrent
 * misses for one artifact share a single read. Every load is hashed before it
 * is cached or served: a damaged file must not become a damaged cache entry
 * that outlives the file's repair. A damaged load is quarantined and answers
 * artifact-missing.
 */
import type { ArtifactStore } from '../storage/artifact-store.js';
import { SnapError } from '../util/errors.js';
import { sha256Hex } from '../util/hash.js';
import { ArtifactIntegrity } from './integrity.js';

export class HotArtifactCache {
  private readonly items = new Map<string, Buffer>(); // insertion order = LRU order
  private readonly loading = new Map<string, Promise<Buffer>>();
  private bytes = 0;
  /** Larger artifacts are always streamed from the store. */
  readonly maxItemBytes: number;
  private readonly integrity: ArtifactIntegrity;

  constructor(
    private readonly store: ArtifactStore,
    private readonly budgetBytes: number,
    opts: { maxItemBytes?: number; integrity?: ArtifactIntegrity } = {},
  ) {
    this.maxItemBytes = opts.maxItemBytes ?? Math.min(64 << 20, budgetBytes / 4);
    this.integrity = opts.integrity ?? new ArtifactIntegrity(store);
    this.integrity.onQuarantine((digest) => this.drop(digest));
  }

  /** The artifact's verified bytes if it is small enough to cache (loading it if needed), else null. */
  async get(digest: string, size: number): Promise<Buffer | null> {
    if (size > this.maxItemBytes || this.budgetBytes <= 0) return null;
    const hit = this.items.get(digest);
    if (hit) {
      this.items.delete(digest);
      this.items.set(digest, hit);
      return hit;
    }
    let p = this.loading.get(digest);
    if (!p) {
      p = this.load(digest).finally(() => this.loading.delete(digest));
      this.loading.set(digest, p);
      p.then((buf) => this.add(digest, buf), () => {});
    }
    return p;
  }

  /** Forget a cached copy (its stored copy was found damaged). */
  drop(digest: string): void {
    const buf = this.items.get(digest);
    if (!buf) return;
    this.items.delete(digest);
    this.bytes -= buf.length;
  }

  private async load(digest: string): Promise<Buffer> {
    for (let attempt = 1; ; attempt++) {
      const buf = await this.store.read(digest);
      const actual = sha256Hex(buf);
      if (actual === digest) {
        this.integrity.markVerified(digest);
        return buf;
      }
      // Intact on a second read: the file changed under the first one; load it again, once.
      const found = await this.integrity.confirmDamage(digest, actual, buf.length, 'when loading it into the cache');
      if (found !== 'intact' || attempt > 1) throw new SnapError('artifact-missing', `artifact ${digest} is damaged on the server and was quarantined`);
    }
  }

  private add(digest: string, buf: Buffer): void {
    if (this.items.has(digest)) return;
    this.items.set(digest, buf);
    this.bytes += buf.length;
    for (const [d, b] of this.items) {
      if (this.bytes <= this.budgetBytes) break;
      this.items.delete(d);
      this.bytes -= b.length;
    }
  }
}
