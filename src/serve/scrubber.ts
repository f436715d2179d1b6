/**
 * A slow background scan that hashes every artifact the published manifests
 * (composed from the ref records of every mode) name, so damage is found even in artifacts nobody reads (first reads and
 * client reports only see what is downloaded). It reads at most a given number
 * of bytes per second, then rests between passes. Off unless configured
 * (SNAPCLONE_VERIFY_MBPS): a scan competes with clones for disk and CPU.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { manifestArtifacts, parseManifest } from '../clonepack/manifest.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { log } from '../util/log.js';
import type { ArtifactIntegrity } from './integrity.js';
import { ManifestComposer } from './compose.js';

export interface ScrubOptions {
  bytesPerSecond: number;
  /** Rest between passes (default an hour). */
  pauseMs?: number;
}

export class ArtifactScrubber {
  readonly #stop = new AbortController();
  #running: Promise<void> | null = null;
  readonly composer: ManifestComposer;

  constructor(
    private readonly store: ArtifactStore,
    private readonly meta: MetadataStore,
    private readonly integrity: ArtifactIntegrity,
    private readonly opts: ScrubOptions,
    composer?: ManifestComposer,
  ) {
    this.composer = composer ?? new ManifestComposer(store, meta);
  }

  start(): void {
    this.#running ??= this.#loop();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#running;
  }

  /** One pass: each artifact named by any published manifest, hashed once, at the configured rate. */
  async pass(): Promise<{ checked: number; damaged: number }> {
    const signal = this.#stop.signal;
    const pace = pacer(this.opts.bytesPerSecond, signal);
    const seen = new Set<string>();
    let checked = 0;
    let damaged = 0;
    const scan = async (digest: string) => {
      if (seen.has(digest) || signal.aborted) return;
      seen.add(digest);
      checked++;
      if ((await this.integrity.check(digest, pace)) === 'damaged') damaged++;
    };
    for (const repo of await this.meta.listRepos()) {
      for (const ref of await this.meta.listRefs(repo.name)) {
        let manifest: string;
        try {
          manifest = (await this.composer.manifestFor(ref)).digest;
        } catch (err) {
          log.warn(`cannot compose the manifest of ${repo.name} ${ref.ref} (${ref.mode}): ${(err as Error).message}`);
          continue;
        }
        await scan(manifest);
        let names: string[] = [];
        try {
          names = manifestArtifacts(parseManifest(await this.store.read(manifest))).map((a) => a.digest);
        } catch {
          // Absent or damaged: the check above said so.
        }
        for (const d of names) await scan(d);
      }
    }
    return { checked, damaged };
  }

  async #loop(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      try {
        const t0 = Date.now();
        const { checked, damaged } = await this.pass();
        if (!signal.aborted) log.info(`verified ${checked} artifacts in ${Math.round((Date.now() - t0) / 1000)} s: ${damaged} damaged`);
        await sleep(this.opts.pauseMs ?? 60 * 60 * 1000, undefined, { signal });
      } catch (err) {
        if (signal.aborted) return;
        log.error(`artifact scan failed: ${(err as Error).message}`);
        await sleep(60_000, undefined, { signal }).catch(() => undefined);
      }
    }
  }
}

/** After each `n` bytes, wait until the scan is no faster than `bytesPerSecond` since it began. */
function pacer(bytesPerSecond: number, signal: AbortSignal): (n: number) => Promise<void> {
  const t0 = Date.now();
  let total = 0;
  return async (n) => {
    total += n;
    const wait = t0 + (total / bytesPerSecond) * 1000 - Date.now();
    if (wait > 0) await sleep(wait, undefined, { signal });
    else signal.throwIfAborted();
  };
}
