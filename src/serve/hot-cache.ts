/**
 * Hot artifacts in memory. Artifacts are immutable, so a cached copy never goes
 * stale; serving one skips the file read and its copy (one write syscall per
 * response instead of a read/write loop). LRU within a byte budget; concurrent
 * misses for one artifact share a single read.
 */
import type { ArtifactStore } from '../storage/artifact-store.js';

export class HotArtifactCache {
  private readonly items = new Map<string, Buffer>(); // insertion order = LRU order
  private readonly loading = new Map<string, Promise<Buffer>>();
  private bytes = 0;

  constructor(
    private readonly store: ArtifactStore,
    private readonly budgetBytes: number,
    /** Larger artifacts are always streamed from the store. */
    readonly maxItemBytes: number = Math.min(64 << 20, budgetBytes / 4),
  ) {}

  /** The artifact's bytes if it is small enough to cache (loading it if needed), else null. */
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
      p = this.store.read(digest).finally(() => this.loading.delete(digest));
      this.loading.set(digest, p);
      p.then((buf) => this.add(digest, buf), () => {});
    }
    return p;
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
