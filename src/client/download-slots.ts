/**
 * The clone's concurrent downloads, in two classes: what the work tree waits
 * on (the table, archive chunks, the HEAD packs a depth-1 clone inflates, and
 * history packs, a full clone's longest download) goes before what only .git
 * needs and has time for (HEAD packs when the tree comes from the archive).
 * A freed slot passes to the oldest urgent waiter first.
 */
export class DownloadSlots {
  private free: number;
  private readonly urgent: (() => void)[] = [];
  private readonly background: (() => void)[] = [];

  constructor(slots: number) {
    this.free = slots;
  }

  async use<T>(urgent: boolean, fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => (urgent ? this.urgent : this.background).push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.urgent.shift() ?? this.background.shift();
      if (next) next();
      else this.free++;
    }
  }
}
