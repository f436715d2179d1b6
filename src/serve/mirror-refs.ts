/**
 * The branches and tags of each repository's mirror, for resolves of refs not
 * built yet. Anyone may resolve, so each such request must not run git:
 * concurrent lookups of one mirror share one `git for-each-ref`, and its answer
 * is reused while the mirror's refs look unchanged (same packed-refs and
 * refs/heads, refs/tags directories) and for at most MAX_AGE_MS, which bounds
 * what the quick look can miss (a ref updated in a nested directory).
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { snapshotRefs } from '../builder/mirror.js';
import type { RefEntry } from '../clonepack/manifest.js';

const MAX_AGE_MS = 2000;

interface Entry {
  key: string;
  at: number;
  refs: Promise<RefEntry[]>;
}

export class MirrorRefs {
  readonly #entries = new Map<string, Entry>();

  async get(mirrorDir: string): Promise<RefEntry[]> {
    const key = await refsKey(mirrorDir);
    const cached = this.#entries.get(mirrorDir);
    if (cached && cached.key === key && Date.now() - cached.at < MAX_AGE_MS) return cached.refs;
    // Keyed by the state seen before the run: a change during it makes the next lookup run again.
    const entry: Entry = { key, at: Date.now(), refs: snapshotRefs(mirrorDir) };
    this.#entries.set(mirrorDir, entry);
    entry.refs.catch(() => {
      if (this.#entries.get(mirrorDir) === entry) this.#entries.delete(mirrorDir); // failures are not remembered
    });
    return entry.refs;
  }

  /** Drop what is known of a mirror (removed, or re-pointed). */
  forget(mirrorDir: string): void {
    this.#entries.delete(mirrorDir);
  }
}

async function refsKey(dir: string): Promise<string> {
  const parts = await Promise.all(
    ['packed-refs', 'refs/heads', 'refs/tags', 'HEAD'].map((p) =>
      stat(join(dir, p)).then(
        (st) => `${st.ino}:${st.size}:${st.mtimeMs}`,
        () => '-',
      ),
    ),
  );
  return parts.join('/');
}

/** Whether the mirror's refs have exactly the upstream's tips (ls-remote's name -> oid). */
export function sameTips(mirror: RefEntry[], upstream: Map<string, string>): boolean {
  if (mirror.length !== upstream.size) return false;
  return mirror.every((r) => upstream.get(r.name) === r.oid);
}
