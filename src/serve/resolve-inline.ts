/**
 * The `inline` field of a resolve answer (`&inline=1`): the manifest's bytes and,
 * when its compressed size is at most SNAPCLONE_INLINE_TABLE_MAX (default
 * 256 KiB), the file table's, base64. A clone then starts writing after one
 * round trip instead of three. Bytes come from the hot cache (verified when
 * loaded, so a resolve reads no store in the steady state); without one, from
 * the store, hashed here. Anything that cannot be had intact is left out (the
 * answer says null, or has no table): the client then fetches it from
 * /v1/artifacts, whose checks and quarantine handle the damage.
 *
 * The field's JSON text is made once per manifest and kept (within a byte
 * budget), then spliced into the answer: on git/git (350 KiB inline) base64
 * encoding and JSON.stringify of the strings took ~3.4 ms per resolve.
 */
import type { ServerResponse } from 'node:http';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { parseManifest, type ArtifactRef } from '../clonepack/manifest.js';
import { sha256Hex } from '../util/hash.js';
import { log } from '../util/log.js';
import { sendJson } from './http-util.js';
import type { HotArtifactCache } from './hot-cache.js';
import type { ArtifactIntegrity } from './integrity.js';

export const INLINE_TABLE_MAX_DEFAULT = 256 * 2 ** 10;
/** Larger manifests (long histories, many refs) are fetched as before: the answer stays small to parse. */
export const INLINE_MANIFEST_MAX = 4 * 2 ** 20;
/** Manifest digest → its table, so a resolve parses a manifest once. */
const REMEMBERED_TABLES = 4096;

export function inlineTableMaxFrom(env: NodeJS.ProcessEnv): number {
  const v = env.SNAPCLONE_INLINE_TABLE_MAX;
  if (v === undefined || v === '') return INLINE_TABLE_MAX_DEFAULT;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : INLINE_TABLE_MAX_DEFAULT;
}

/** The JSON text of `inline` when nothing can be inlined. */
const NULL_FIELD = Buffer.from('null');

/**
 * A 200 resolve answer: `body` as JSON, with `"inline": <field>` added when asked for (field
 * undefined: not asked; same headers as sendJson).
 */
export function sendResolveAnswer(res: ServerResponse, body: Record<string, unknown>, field: Buffer | null | undefined): void {
  if (field === undefined) return sendJson(res, 200, body);
  const text = JSON.stringify(body);
  const parts = [Buffer.from(`${text.slice(0, -1)}${text === '{}' ? '' : ','}"inline":`), field ?? NULL_FIELD, Buffer.from('}')];
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': parts.reduce((a, p) => a + p.length, 0), 'cache-control': 'no-store' });
  res.cork();
  for (const p of parts.slice(0, -1)) res.write(p);
  res.end(parts.at(-1));
}

export class InlineArtifacts {
  readonly #tables = new Map<string, ArtifactRef>();
  /** Manifest digest → the field's JSON text (insertion order = LRU order), within #budget bytes. */
  readonly #fields = new Map<string, Buffer>();
  #fieldBytes = 0;
  readonly #budget: number;
  /** Misses being built: concurrent resolves of one new manifest (a herd of clones of a new commit) share one read and encode. */
  readonly #building = new Map<string, Promise<Buffer | null>>();

  constructor(
    private readonly src: { store: ArtifactStore; integrity: ArtifactIntegrity; hot?: HotArtifactCache | undefined },
    private readonly tableMax: number,
  ) {
    // No hot cache (SNAPCLONE_CACHE_MB=0): no memory for this either.
    this.#budget = Math.min(16 * 2 ** 20, src.hot?.maxItemBytes ?? 0);
  }

  /** The JSON text of the inline field for this manifest: null when its bytes cannot be had intact (or it is too large). */
  async field(m: { digest: string; size: number }): Promise<Buffer | null> {
    const hit = this.#fields.get(m.digest);
    if (hit) {
      this.#fields.delete(m.digest);
      this.#fields.set(m.digest, hit);
      return hit;
    }
    if (m.size > INLINE_MANIFEST_MAX) return null;
    let building = this.#building.get(m.digest);
    if (!building) {
      building = this.#build(m).finally(() => this.#building.delete(m.digest));
      this.#building.set(m.digest, building);
    }
    return building;
  }

  /** Byte count of the fields kept (within the budget). */
  get cachedBytes(): number {
    return this.#fieldBytes;
  }

  async #build(m: { digest: string; size: number }): Promise<Buffer | null> {
    const manifest = await this.#bytes(m);
    if (!manifest) return null;
    const table = this.#tableOf(m.digest, manifest);
    const tableBytes = table && table.size <= this.tableMax ? await this.#bytes(table) : null;
    // Base64 needs no JSON escaping: the strings go in as they are.
    const field = Buffer.from(`{"manifest":"${manifest.toString('base64')}"${tableBytes ? `,"table":"${tableBytes.toString('base64')}"` : ''}}`, 'latin1');
    // Only whole answers are kept: a table left out for damage is tried again next time.
    if (tableBytes || !table || table.size > this.tableMax) this.#remember(m.digest, field);
    return field;
  }

  #remember(digest: string, field: Buffer): void {
    if (field.length > this.#budget) return;
    // A replaced entry gives its bytes back (else the count drifts past the budget for good).
    const old = this.#fields.get(digest);
    if (old) (this.#fields.delete(digest), (this.#fieldBytes -= old.length));
    this.#fields.set(digest, field);
    this.#fieldBytes += field.length;
    for (const [d, f] of this.#fields) {
      if (this.#fieldBytes <= this.#budget) break;
      this.#fields.delete(d);
      this.#fieldBytes -= f.length;
    }
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
