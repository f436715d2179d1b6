/**
 * Properties of the manifest codec (src/clonepack/manifest.ts): every valid
 * manifest survives encode -> parse unchanged and encodes canonically; any bytes
 * (mutated manifests, random bytes, JSON with fields of the wrong type) either
 * parse into a manifest that validates again, or are refused with a SnapError.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeManifest, parseManifest, validateManifest, canonicalJson, MAX_CHUNK_RAW, zstdBound, type Manifest, type PackRef } from '../../src/clonepack/manifest.js';
import { fuzzParams, mutated, parsesOrRefuses, randomBytes } from './fuzz-support.js';

const hex = (n: number) => fc.uint8Array({ minLength: n / 2, maxLength: n / 2 }).map((a) => Buffer.from(a).toString('hex'));
const oid = hex(40);
const digest = hex(64);
const name = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,8}(\/[a-z0-9][a-z0-9_-]{0,8}){0,2}$/);
const size = fc.integer({ min: 0, max: 2 ** 36 });
const artifact = fc.record({ digest, size });
const pack: fc.Arbitrary<PackRef> = fc.record({ name: hex(40).map((h) => `pack-${h}`), pack: artifact, idx: artifact, objects: fc.integer({ min: 0, max: 2 ** 32 - 1 }) });
const packs = (min: number) => fc.uniqueArray(pack, { minLength: min, maxLength: 4, selector: (p) => p.name });
const chunk = fc.integer({ min: 0, max: MAX_CHUNK_RAW }).chain((rawSize) => fc.record({ digest, size: fc.integer({ min: 0, max: zstdBound(rawSize) }), rawSize: fc.constant(rawSize) }));

/** Valid manifests of both versions and every mode, with and without a commit. */
export const validManifest: fc.Arbitrary<Manifest> = fc
  .record({
    version: fc.constantFrom(1 as const, 2 as const),
    mode: fc.constantFrom('shallow' as const, 'files' as const, 'full' as const),
    branch: fc.boolean(),
    refName: name,
    hasCommit: fc.boolean(),
    commit: oid,
    defaultBranch: fc.option(name, { nil: null }),
    refs: fc.uniqueArray(fc.record({ name: fc.tuple(fc.constantFrom('refs/heads/', 'refs/tags/'), name).map(([p, n]) => p + n), oid, peeled: fc.option(oid, { nil: undefined }) }), { maxLength: 6, selector: (r) => r.name }),
    follow: fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
    withFollowed: fc.boolean(),
    headPacks: packs(1),
    historyPacks: packs(1),
    tableRaw: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    entries: fc.integer({ min: 0, max: 50_000_000 }),
    tableDigest: digest,
    tableSizeFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    chunks: fc.array(chunk, { maxLength: 5 }),
  })
  .map((g) => {
    const version = g.version;
    const mode = version === 1 ? 'full' : g.mode;
    const full = mode === 'full';
    const ref = (g.branch || !g.hasCommit ? 'refs/heads/' : 'refs/tags/') + g.refName;
    let refs = g.refs.filter((r) => r.name !== ref).sort((a, b) => (a.name < b.name ? -1 : 1));
    refs = refs.map((r) => (r.peeled === undefined ? { name: r.name, oid: r.oid } : r)) as typeof refs;
    const commit = g.hasCommit ? g.commit : null;
    const tags = refs.filter((r, i) => r.name.startsWith('refs/tags/') && g.follow[i]).map((r) => r.name);
    const chunks = commit ? g.chunks : [];
    const m: Manifest = {
      format: 'snapclone.manifest',
      version,
      ...(version === 2 ? { mode } : {}),
      ref,
      commit,
      defaultBranch: g.defaultBranch,
      refs,
      ...(g.withFollowed && commit ? { followedTags: tags } : {}),
      headPacks: commit ? g.headPacks : [],
      historyPacks: full && (commit || refs.length > 0) ? g.historyPacks : [],
      table: { digest: g.tableDigest, size: Math.floor(zstdBound(g.tableRaw) * g.tableSizeFrac), entries: commit ? g.entries : 0, rawSize: g.tableRaw },
      archive: { codec: 'zstd', bytes: chunks.reduce((s, c) => s + c.rawSize, 0), chunks },
    };
    return JSON.parse(JSON.stringify(m)) as Manifest; // plain objects (fast-check may build null-prototype records)
  });

/** The same value with every object's keys in reverse order. */
function reversedKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reversedKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reversedKeys(x)]));
  return v;
}

test('valid manifests round-trip: parse(encode(m)) equals m, and encoding is canonical', () => {
  fc.assert(
    fc.property(validManifest, (m) => {
      const bytes = encodeManifest(m);
      const back = parseManifest(bytes);
      assert.deepEqual(back, m);
      assert.deepEqual(encodeManifest(back), bytes);
      // Canonical: the same bytes whatever the key order of the object encoded.
      assert.equal(canonicalJson(reversedKeys(m)), bytes.toString('utf8'));
    }),
    fuzzParams(150),
  );
});

/** What a parsed manifest must satisfy: it validates again and re-encodes to a parseable document. */
function checkParsed(out: ReturnType<typeof parsesOrRefuses<Manifest>>): void {
  if (!out.ok) return;
  validateManifest(out.value);
  assert.deepEqual(parseManifest(encodeManifest(out.value)), out.value);
}

test('mutated manifest bytes: parsed into a valid manifest or refused with a SnapError', () => {
  fc.assert(
    fc.property(mutated(validManifest.map(encodeManifest)), (bytes) => checkParsed(parsesOrRefuses(() => parseManifest(bytes)))),
    fuzzParams(600),
  );
});

test('random bytes and random JSON: refused with a SnapError, never another exception', () => {
  const json = fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null'));
  fc.assert(
    fc.property(fc.oneof(randomBytes(Buffer.from('{"format":"snapclone.manifest",')), json), (bytes) => checkParsed(parsesOrRefuses(() => parseManifest(bytes)))),
    fuzzParams(600),
  );
});

/** Replace the value at one path of a manifest with any JSON value (type confusion: a string for a list, an object for a number, ...). */
function replaceAt(m: Manifest, pick: number, value: unknown): unknown {
  const copy = JSON.parse(JSON.stringify(m));
  const slots: Array<[Record<string, unknown> | unknown[], string | number]> = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach((x, i) => (slots.push([v, i]), walk(x)));
    else if (v && typeof v === 'object') for (const k of Object.keys(v)) slots.push([v as Record<string, unknown>, k]), walk((v as Record<string, unknown>)[k]);
  };
  walk(copy);
  const [holder, key] = slots[pick % slots.length]!;
  (holder as Record<string | number, unknown>)[key] = value;
  return copy;
}

test('a manifest with one field of any other JSON value: valid or refused with a SnapError', () => {
  const forged = fc.oneof(fc.jsonValue(), fc.constantFrom(-1, 2 ** 53, 1e300, 0.5, '', '__proto__', [], {}, null, 2 ** 40, { toString: 0 }, 'a\nb\x1b[2J\x7f\x9b'));
  fc.assert(
    fc.property(validManifest, fc.nat(), forged, (m, pick, value) => {
      const bytes = Buffer.from(JSON.stringify(replaceAt(m, pick, value)));
      checkParsed(parsesOrRefuses(() => parseManifest(bytes)));
    }),
    fuzzParams(600),
  );
});

test('huge counts and sizes in a manifest are refused without allocating for them', () => {
  const m = fc.sample(validManifest, { numRuns: 1, seed: 7 })[0]!;
  for (const v of [2 ** 40, 2 ** 53, 2 ** 64, 1e308, -1]) {
    for (const path of ['table.size', 'table.rawSize', 'table.entries', 'archive.bytes']) {
      const copy = JSON.parse(JSON.stringify(m));
      const [a, b] = path.split('.') as [string, string];
      copy[a][b] = v;
      const out = parsesOrRefuses(() => parseManifest(Buffer.from(JSON.stringify(copy))));
      assert.equal(out.ok, false, `${path} = ${v} accepted`);
    }
  }
});

test('a manifest version or field name that is an object or holds control characters gives a one-line SnapError (was a TypeError / printed as sent)', () => {
  for (const text of [
    '{"format":"snapclone.manifest","version":{"toString":0}}',
    '{"format":"snapclone.manifest","version":"2\\n\\u001b[2J"}',
    '{"x\\u001b[2J\\n\\u007f\\u009b":1}',
  ]) {
    const out = parsesOrRefuses(() => parseManifest(Buffer.from(text)));
    assert.equal(out.ok, false, text);
  }
});
