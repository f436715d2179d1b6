/**
 * The `inline` field of a resolve answer (`&inline=1`): the manifest's bytes and,
 * when its compressed size is at most SNAPCLONE_INLINE_TABLE_MAX (default
 * 256 KiB), the file table's, base64. A clone then starts writing after one
 * round trip instead of three. Bytes come from the hot cache (verified when
 * loaded, so a resolve reads no store in the steady state); without one, from
 * the store, hashed here. Anything that cannot be had intact is left out (the
 * answer says null, or has no table): the client then fetches it from
 * /v1/artifacts, whose checks and quarantine handle the damage.
 */
import type { ArtifactStore } from '../storage/artifact-store.js';
import { parseManifest, type ArtifactRef } from '../clonepack/manifest.js';
import { sha256Hex } from '../util/hash.js';
import { log } from '../util/log.js';
import type { HotArtifactCache } from './hot-cache.js';
import type { ArtifactIntegrity } from './integrity.js';

export const INLINE_TABLE_MAX_DEFAULT = 256 * 2 ** 10;
/** Larger manifests (long histories, many refs) are fetched as before: the answer stays small to parse. */
export const INLINE_MANIFEST_MAX = 4 * 2 ** 20;
/** Manifest digest → its table, so a resolve parses a manifest once. */
const REMEMBERED_TABLES = 4096;

export interface InlineAnswer {
  manifest: string;
  table?: string;
}

export function inlineTableMaxFrom(env: NodeJS.ProcessEnv): number {
  const v = env.SNAPCLONE_INLINE_TABLE_MAX;
  if (v === undefined || v === '') return INLINE_TABLE_MAX_DEFAULT;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : INLINE_TABLE_MAX_DEFAULT;
}

export class InlineArtifacts {
  readonly #tables = new Map<string, ArtifactRef>();

  constructor(
    private readonly src: { store: ArtifactStore; integrity: ArtifactIntegrity; hot?: HotArtifactCache | undefined },
    private readonly tableMax: number,
  ) {}

  /** The inline field for this manifest: null when its bytes cannot be had intact (or it is too large). */
  async answer(m: { digest: string; size: number }): Promise<InlineAnswer | null> {
    if (m.size > INLINE_MANIFEST_MAX) return null;
    const manifest = await this.#bytes(m);
    if (!manifest) return null;
    const table = this.#tableOf(m.digest, manifest);
    const tableBytes = table && table.size <= this.tableMax ? await this.#bytes(table) : null;
    return tableBytes ? { manifest: manifest.toString('base64'), table: tableBytes.toString('base64') } : { manifest: manifest.toString('base64') };
  }

  #tableOf(digest: string, manifest: Buffer): ArtifactRef | null {
    const hit = this.#tables.get(digest);
    if (hit) return hit;
    let table: ArtifactRef;
    try {
      const t = parseManifest(manifest).table;
      table = { digest: t.digest, size: t.size };
    } catch (err) {
      log.warn(`cannot read manifest ${digest} to inline its table: ${(err as Error).message}`);
      return null;
    }
    if (this.#tables.size >= REMEMBERED_TABLES) this.#tables.delete(this.#tables.keys().next().value!);
    this.#tables.set(digest, table);
    return table;
  }

  /** Verified bytes of an artifact, or null. */
  async #bytes(a: ArtifactRef): Promise<Buffer | null> {
    const { store, integrity, hot } = this.src;
    try {
      const cached = hot ? await hot.get(a.digest, a.size) : null;
      if (cached) return cached;
      const buf = await store.read(a.digest);
      if (buf.length === a.size && sha256Hex(buf) === a.digest) {
        integrity.markVerified(a.digest);
        return buf;
      }
      integrity.requestCheck(a.digest, 'its bytes did not match when inlining them in a resolve');
      return null;
    } catch (err) {
      log.debug(`not inlining ${a.digest}: ${(err as Error).message}`);
      return null;
    }
  }
}
