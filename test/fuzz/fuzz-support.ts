/**
 * Shared pieces of the property-based tests (fast-check) of the parsers of
 * untrusted bytes: how many cases to run, the seed to replay, byte mutations,
 * and the check that a parser on hostile input either returns or throws its
 * documented error, in bounded time and memory.
 *
 *   SNAPCLONE_FUZZ_RUNS=20000  cases per property (default: each property's CI count)
 *   SNAPCLONE_FUZZ_SEED=123    replay the seed fast-check printed on a failure
 *   SNAPCLONE_FUZZ_PATH=0:1:2  with the seed, go straight to the shrunk counterexample
 */
import fc from 'fast-check';
import { SnapError } from '../../src/util/errors.js';

/**
 * Cases for one property: SNAPCLONE_FUZZ_RUNS if set, else `ciRuns`. A property
 * that runs real git per case divides the requested count by `cost` (at least 1 case).
 */
export function fuzzRuns(ciRuns: number, cost = 1): number {
  const v = process.env.SNAPCLONE_FUZZ_RUNS;
  if (v === undefined || v === '') return ciRuns;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`SNAPCLONE_FUZZ_RUNS must be a positive integer, got ${JSON.stringify(v)}`);
  return Math.max(1, Math.floor(n / cost));
}

/** fast-check parameters: the run count, and the seed (and path) to replay when given. */
export function fuzzParams<T>(ciRuns: number, cost = 1): fc.Parameters<T> {
  const p: fc.Parameters<T> = { numRuns: fuzzRuns(ciRuns, cost) };
  const seed = process.env.SNAPCLONE_FUZZ_SEED;
  if (seed) {
    const s = Number(seed);
    if (!Number.isInteger(s)) throw new Error(`SNAPCLONE_FUZZ_SEED must be an integer, got ${JSON.stringify(seed)}`);
    p.seed = s;
    if (process.env.SNAPCLONE_FUZZ_PATH) p.path = process.env.SNAPCLONE_FUZZ_PATH;
  }
  return p;
}

/** A case slower than this is a hang (or a quadratic blow-up), not a slow machine. */
export const HANG_MS = 10_000;
/** Memory one case on a small input may add before it returns; a length field believed blindly adds far more. */
export const ALLOC_LIMIT = 48 * 2 ** 20;

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: SnapError };

function used(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/**
 * Run a parser on hostile input. It may return, or throw an error `documented`
 * accepts (by default a SnapError); anything else (a TypeError, RangeError, an
 * assertion) fails the property, as does a case that takes HANG_MS or more or
 * grows the heap and buffers by ALLOC_LIMIT or more.
 */
export function parsesOrRefuses<T>(parse: () => T, documented: (e: unknown) => boolean = isSnapError): Outcome<T> {
  const mem0 = used();
  const t0 = performance.now();
  let out: Outcome<T>;
  try {
    out = { ok: true, value: parse() };
  } catch (err) {
    if (!documented(err)) throw new Error(`parser threw ${describe(err)}, not its documented error`, { cause: err });
    out = { ok: false, error: err as SnapError };
  }
  checkBounds(t0, mem0);
  return out;
}

/** parsesOrRefuses for async parsers. */
export async function parsesOrRefusesAsync<T>(parse: () => Promise<T>, documented: (e: unknown) => boolean = isSnapError): Promise<Outcome<T>> {
  const mem0 = used();
  const t0 = performance.now();
  let out: Outcome<T>;
  try {
    out = { ok: true, value: await parse() };
  } catch (err) {
    if (!documented(err)) throw new Error(`parser threw ${describe(err)}, not its documented error`, { cause: err });
    out = { ok: false, error: err as SnapError };
  }
  checkBounds(t0, mem0);
  return out;
}

function checkBounds(t0: number, mem0: number): void {
  const ms = performance.now() - t0;
  if (ms >= HANG_MS) throw new Error(`one case took ${Math.round(ms)} ms: a hang`);
  const grew = used() - mem0;
  if (grew >= ALLOC_LIMIT) throw new Error(`one case grew the heap and buffers by ${Math.round(grew / 2 ** 20)} MiB: an allocation from an untrusted length`);
}

/** A SnapError with a one-line message: no line breaks, terminal escapes or other control characters (it is printed as is). */
export function isSnapError(e: unknown): boolean {
  return e instanceof SnapError && e.message.length > 0 && !/[\x00-\x1f\x7f-\x9f\u2028\u2029]/.test(e.message);
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** Values a length or count field is forged to: edges of 8, 16, 32 and 53 bits, and beyond. */
const EXTREMES = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 2 ** 40, 2 ** 53 - 1, 2 ** 63];

type Mutation = (b: Buffer) => Buffer;

/** One edit of a byte string: bit flips, truncation, insertion, deletion, a forged length field, a random tail. */
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 8 }).map((flips) => (b: Buffer) => {
    const out = Buffer.from(b);
    if (out.length) for (const [at, bit] of flips) out[at % out.length]! ^= 1 << bit;
    return out;
  }),
  fc.nat().map((n) => (b: Buffer) => b.subarray(0, b.length ? n % b.length : 0)),
  fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([at, ins]) => (b: Buffer) => {
    const i = b.length ? at % (b.length + 1) : 0;
    return Buffer.concat([b.subarray(0, i), ins, b.subarray(i)]);
  }),
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 16 })).map(([at, n]) => (b: Buffer) => {
    const i = b.length ? at % b.length : 0;
    return Buffer.concat([b.subarray(0, i), b.subarray(i + n)]);
  }),
  fc.tuple(fc.nat(), fc.constantFrom(...EXTREMES), fc.constantFrom(2, 4, 8), fc.boolean()).map(([at, v, width, le]) => (b: Buffer) => {
    const out = Buffer.from(b);
    if (out.length < width) return out;
    const i = at % (out.length - width + 1);
    const big = BigInt.asUintN(width * 8, BigInt(v));
    const field = Buffer.alloc(8);
    if (le) field.writeBigUInt64LE(big);
    else field.writeBigUInt64BE(big);
    (le ? field.subarray(0, width) : field.subarray(8 - width)).copy(out, i);
    return out;
  }),
  fc.uint8Array({ minLength: 1, maxLength: 64 }).map((tail) => (b: Buffer) => Buffer.concat([b, tail])),
);

/** A valid input with 1 to 4 mutations applied. */
export function mutated(valid: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  return fc.tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([b, ms]) => ms.reduce((acc, m) => m(acc), b));
}

/** Random bytes, sometimes behind a given magic so the parser gets past its first check. */
export function randomBytes(magic: Buffer | null = null, maxLength = 4096): fc.Arbitrary<Buffer> {
  const raw = fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));
  if (!magic) return raw;
  return fc.oneof(raw, raw.map((r) => Buffer.concat([magic, r])));
}
