/**
 * Content-defined cutting, pure: where an unchanged region of data keeps the
 * same boundaries whatever changed before it, so its pieces are byte-identical
 * across builds and are reused by digest.
 *
 *   - GearChunker: FastCDC over a byte stream (gear rolling hash, normalized
 *     chunking: a harder mask before the average size, an easier one after it,
 *     so chunk sizes cluster around the average). Streaming: feed buffers of any
 *     size; the cut points do not depend on how the stream was split.
 *   - groupBlobs: the same idea over a list of blobs (the HEAD-pack groups):
 *     cut after a blob with probability size/avg, decided by its object id.
 */

export interface CdcParams {
  min: number;
  avg: number;
  max: number;
}

/**
 * Archive chunks: 128 KiB / 512 KiB / 2 MiB raw. Measured on vuejs/core (docs/ARCHITECTURE.md):
 * 1 MiB average chunks reuse 4 of 5 after one commit, 512 KiB 9 of 10, at +2.8% compressed
 * size over fixed 4 MiB chunks (256 KiB: +4.7%). The client holds at most 12 chunks: 24 MiB.
 */
export const DEFAULT_ARCHIVE_CDC: CdcParams = { min: 128 << 10, avg: 512 << 10, max: 2 << 20 };
/**
 * Blob groups (HEAD packs 1..n): 256 KiB / 1 MiB / 4 MiB of raw blob bytes. Each group is two
 * downloads (pack and idx) of a depth-1 clone, and on a small tree those requests were its
 * cost: vuejs/core (6.3 MB) in 22 groups of 256 KiB took 108-131 ms to download on loopback,
 * in 7 groups of 1 MiB 68-75 ms (clone 147-179 -> 108-121 ms; 2 MiB groups: no further gain).
 * The price is reuse: HEAD after HEAD~1 stores 314 kB new (6 of 7 groups reused) against 198 kB.
 */
export const DEFAULT_GROUP_CDC: CdcParams = { min: 256 << 10, avg: 1 << 20, max: 4 << 20 };

/** Fixed so that every build everywhere cuts at the same places. Never change it (it would change every chunk). */
const GEAR_SEED = 0x5eed_c10e;

/** 256 pseudo-random 32-bit values from GEAR_SEED (splitmix32). */
function makeGearTable(seed: number): Uint32Array {
  const t = new Uint32Array(256);
  let s = seed >>> 0;
  for (let i = 0; i < 256; i++) {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    t[i] = (z ^ (z >>> 16)) >>> 0;
  }
  return t;
}

export const GEAR: Uint32Array = makeGearTable(GEAR_SEED);

/** A mask of `bits` ones in the top bits of a 32-bit word (the top bits of h<<1 depend on the last 32 bytes). */
function topMask(bits: number): number {
  const b = Math.max(1, Math.min(31, bits));
  return ((0xffffffff << (32 - b)) >>> 0) | 0;
}

/** Sizes must be integers with 64 <= min <= avg <= max <= maxCap (archive chunks: MAX_CHUNK_RAW, the client's bound). */
export function checkCdcParams(p: CdcParams, maxCap = Number.MAX_SAFE_INTEGER): void {
  if (!(Number.isSafeInteger(p.min) && Number.isSafeInteger(p.avg) && Number.isSafeInteger(p.max)) || p.min < 64 || !(p.min <= p.avg && p.avg <= p.max)) {
    throw new Error(`chunking: need 64 <= min <= avg <= max, got ${p.min}/${p.avg}/${p.max}`);
  }
  if (p.max > maxCap) throw new Error(`chunking: max ${p.max} is larger than ${maxCap}`);
}

/**
 * Streaming FastCDC. `push(buf)` returns the stream offsets (exclusive ends) of
 * the chunks that end inside `buf`; the bytes after the last cut belong to the
 * chunk still open, which ends at the end of the stream.
 */
export class GearChunker {
  readonly #min: number;
  readonly #avg: number;
  readonly #max: number;
  readonly #maskS: number; // before avg: 2 bits more than log2(avg), cuts rarely
  readonly #maskL: number; // after avg: 2 bits fewer, cuts often
  #hash = 0;
  #inChunk = 0; // bytes of the open chunk so far
  #offset = 0; // stream bytes consumed

  constructor(params: CdcParams = DEFAULT_ARCHIVE_CDC) {
    checkCdcParams(params);
    this.#min = params.min;
    this.#avg = params.avg;
    this.#max = params.max;
    const bits = Math.round(Math.log2(params.avg));
    this.#maskS = topMask(bits + 2);
    this.#maskL = topMask(bits - 2);
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#offset;
  }

  push(buf: Uint8Array): number[] {
    const cuts: number[] = [];
    const gear = GEAR;
    const n = buf.length;
    let i = 0;
    let h = this.#hash;
    let inChunk = this.#inChunk;
    while (i < n) {
      // The first `min` bytes of a chunk cannot end it: skip them without hashing.
      if (inChunk < this.#min) {
        const skip = Math.min(this.#min - inChunk, n - i);
        i += skip;
        inChunk += skip;
        continue;
      }
      const normalEnd = Math.min(n, i + Math.max(0, this.#avg - inChunk));
      const hardEnd = Math.min(n, i + (this.#max - inChunk));
      let cutAt = -1;
      let mask = this.#maskS;
      let j = i;
      for (; j < normalEnd; j++) {
        h = ((h << 1) + gear[buf[j]!]!) | 0;
        if ((h & mask) === 0) {
          cutAt = j + 1;
          break;
        }
      }
      if (cutAt < 0) {
        mask = this.#maskL;
        for (; j < hardEnd; j++) {
          h = ((h << 1) + gear[buf[j]!]!) | 0;
          if ((h & mask) === 0) {
            cutAt = j + 1;
            break;
          }
        }
      }
      if (cutAt < 0 && inChunk + (hardEnd - i) >= this.#max) cutAt = hardEnd;
      if (cutAt >= 0) {
        cuts.push(this.#offset + cutAt);
        inChunk = 0;
        h = 0;
        i = cutAt;
      } else {
        inChunk += j - i;
        i = j;
      }
    }
    this.#hash = h;
    this.#inChunk = inChunk;
    this.#offset += n;
    return cuts;
  }
}

/** Chunk sizes of a whole buffer (a helper for tests and measurements). */
export function chunkSizes(data: Uint8Array, params: CdcParams = DEFAULT_ARCHIVE_CDC): number[] {
  const c = new GearChunker(params);
  const cuts = c.push(data);
  const sizes: number[] = [];
  let prev = 0;
  for (const at of cuts) {
    sizes.push(at - prev);
    prev = at;
  }
  if (prev < data.length) sizes.push(data.length - prev);
  return sizes;
}

export interface BlobInfo {
  oid: string; // 40 hex
  size: number;
}

/**
 * Cut a list of blobs into groups (HEAD packs 1..n). A group closes after a blob
 * when it holds at least `min` bytes and the blob's id, read as a fraction of
 * 2^32, is below size/avg (so each byte is a cut point with probability 1/avg,
 * as in byte-level CDC); before a blob that would take it past `max`; and
 * after any blob of at least `avg` bytes. Only the blob list decides, so an edit
 * changes only the groups around it.
 */
export function groupBlobs(blobs: readonly BlobInfo[], params: CdcParams = DEFAULT_GROUP_CDC): BlobInfo[][] {
  checkCdcParams(params);
  const groups: BlobInfo[][] = [];
  let g: BlobInfo[] = [];
  let acc = 0;
  for (const b of blobs) {
    if (g.length > 0 && acc + b.size > params.max) {
      groups.push(g);
      g = [];
      acc = 0;
    }
    g.push(b);
    acc += b.size;
    const r = parseInt(b.oid.slice(0, 8), 16) / 2 ** 32;
    if (acc >= params.min && (b.size >= params.avg || r < b.size / params.avg)) {
      groups.push(g);
      g = [];
      acc = 0;
    }
  }
  if (g.length > 0) groups.push(g);
  return groups;
}
