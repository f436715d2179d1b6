import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  canonicalJson,
  encodeManifest,
  LIMITS,
  manifestArtifacts,
  MAX_CHUNK_RAW,
  parseManifest,
  validateManifest,
  type Manifest,
} from '../../src/clonepack/manifest.js';
import { SnapError } from '../../src/util/errors.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);
const D = (ch: string) => ch.repeat(64);

function isInvalid(err: unknown): boolean {
  return err instanceof SnapError && err.code === 'invalid';
}

/**
 * A small fixed manifest. Keys are deliberately written out of order, and one
 * optional field is undefined, to show that encoding sorts and omits.
 */
function sample(): Manifest {
  return {
    version: 1,
    format: 'snapclone.manifest',
    table: { size: 40, rawSize: 140, entries: 2, digest: D('3') },
    ref: 'refs/heads/main',
    commit: A,
    defaultBranch: 'main',
    refs: [
      { oid: A, name: 'refs/heads/main', peeled: undefined },
      { peeled: A, oid: B, name: 'refs/tags/v1' },
    ],
    historyPacks: [{ objects: 7, name: `pack-${C}`, idx: { size: 60, digest: D('5') }, pack: { size: 900, digest: D('6') } }],
    headPacks: [{ pack: { digest: D('1'), size: 100 }, objects: 3, name: `pack-${B}`, idx: { size: 50, digest: D('2') } }],
    archive: {
      chunks: [
        { size: 30, rawSize: 10, digest: D('4') },
        { rawSize: 5, digest: D('7'), size: 14 },
      ],
      codec: 'zstd',
      bytes: 15,
    },
  } as Manifest;
}

const GOLDEN =
  '{"archive":{"bytes":15,"chunks":[{"digest":"' +
  D('4') +
  '","rawSize":10,"size":30},{"digest":"' +
  D('7') +
  '","rawSize":5,"size":14}],"codec":"zstd"},' +
  `"commit":"${A}","defaultBranch":"main","format":"snapclone.manifest",` +
  `"headPacks":[{"idx":{"digest":"${D('2')}","size":50},"name":"pack-${B}","objects":3,"pack":{"digest":"${D('1')}","size":100}}],` +
  `"historyPacks":[{"idx":{"digest":"${D('5')}","size":60},"name":"pack-${C}","objects":7,"pack":{"digest":"${D('6')}","size":900}}],` +
  `"ref":"refs/heads/main",` +
  `"refs":[{"name":"refs/heads/main","oid":"${A}"},{"name":"refs/tags/v1","oid":"${B}","peeled":"${A}"}],` +
  `"table":{"digest":"${D('3')}","entries":2,"rawSize":140,"size":40},` +
  '"version":1}';

/** Encode an arbitrary (possibly invalid) value as manifest bytes without validation. */
function raw(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v), 'utf8');
}

/** Apply a change to a fresh sample and expect parseManifest to refuse it. */
function rejects(what: string, change: (m: any) => void): void {
  const m: any = JSON.parse(JSON.stringify(sample()));
  change(m);
  assert.throws(() => parseManifest(raw(m)), isInvalid, what);
  assert.throws(() => validateManifest(m), isInvalid, what);
}

test('encodeManifest produces byte-exact canonical JSON (sorted keys, no whitespace, undefined omitted)', () => {
  const bytes = encodeManifest(sample());
  assert.equal(bytes.toString('utf8'), GOLDEN);
  assert.ok(!/\s/.test(bytes.toString('utf8')));
});

test('encode -> parse round trip gives the same manifest and the same bytes', () => {
  const bytes = encodeManifest(sample());
  const parsed = parseManifest(bytes);
  const expected = JSON.parse(GOLDEN);
  assert.deepEqual(parsed, expected);
  assert.equal('peeled' in parsed.refs[0]!, false);
  assert.deepEqual(encodeManifest(parsed), bytes);
  // Parsing a non-canonical but equivalent form gives the same canonical bytes.
  const pretty = Buffer.from(JSON.stringify(expected, null, 2));
  assert.deepEqual(encodeManifest(parseManifest(pretty)), bytes);
  // Uint8Array (not Buffer) input is accepted too.
  assert.deepEqual(parseManifest(new Uint8Array(bytes)), expected);
});

test('an empty-commit manifest round-trips', () => {
  const m: Manifest = {
    format: 'snapclone.manifest',
    version: 1,
    ref: 'refs/heads/main',
    commit: null,
    defaultBranch: null,
    refs: [],
    headPacks: [],
    historyPacks: [],
    table: { digest: D('e'), size: 13, entries: 0, rawSize: 12 },
    archive: { codec: 'zstd', bytes: 0, chunks: [] },
  };
  assert.deepEqual(parseManifest(encodeManifest(m)), m);
});

test('canonicalJson sorts nested keys, keeps array order, refuses non-integers', () => {
  assert.equal(canonicalJson({ b: [3, { z: 1, a: null }], a: 'x', c: undefined, d: true }), '{"a":"x","b":[3,{"a":null,"z":1}],"d":true}');
  assert.equal(canonicalJson('é"\n'), JSON.stringify('é"\n'));
  assert.throws(() => canonicalJson({ a: 1.5 }));
  assert.throws(() => canonicalJson({ a: 2 ** 53 }));
  assert.throws(() => canonicalJson({ a: NaN }));
});

test('encodeManifest validates before encoding', () => {
  const m: any = sample();
  m.version = 2;
  assert.throws(() => encodeManifest(m), isInvalid);
});

test('manifestArtifacts lists every artifact once', () => {
  const m = sample();
  m.historyPacks[0]!.idx.digest = D('1'); // same as a head pack: listed once
  const list = manifestArtifacts(m);
  const digests = list.map((a) => a.digest).sort();
  assert.deepEqual(digests, [D('1'), D('2'), D('3'), D('4'), D('6'), D('7')]);
  for (const a of list) assert.deepEqual(Object.keys(a).sort(), ['digest', 'size']);
});

test('parseManifest rejects a wrong format or version', () => {
  rejects('format', (m) => (m.format = 'snapclone.manifesto'));
  rejects('missing format', (m) => delete m.format);
  rejects('version 2', (m) => (m.version = 2));
  rejects('version 0', (m) => (m.version = 0));
  rejects('version "1"', (m) => (m.version = '1'));
  rejects('missing version', (m) => delete m.version);
});

test('parseManifest rejects unknown fields at every level', () => {
  rejects('top', (m) => (m.extra = 1));
  rejects('refs', (m) => (m.refs[0].symref = 'x'));
  rejects('headPacks', (m) => (m.headPacks[0].extra = 1));
  rejects('headPacks.pack', (m) => (m.headPacks[0].pack.extra = 1));
  rejects('historyPacks.idx', (m) => (m.historyPacks[0].idx.rawSize = 1));
  rejects('table', (m) => (m.table.codec = 'zstd'));
  rejects('archive', (m) => (m.archive.extra = 1));
  rejects('chunk', (m) => (m.archive.chunks[0].extra = 1));
  rejects('__proto__ key', (m) => Object.defineProperty(m, '__proto__', { value: 1, enumerable: true }));
});

test('parseManifest rejects bad digests and object ids', () => {
  rejects('uppercase digest', (m) => (m.table.digest = 'A'.repeat(64)));
  rejects('short digest', (m) => (m.table.digest = 'a'.repeat(63)));
  rejects('long digest', (m) => (m.headPacks[0].pack.digest = 'a'.repeat(65)));
  rejects('non-hex digest', (m) => (m.headPacks[0].idx.digest = 'g'.repeat(64)));
  rejects('sha1 as digest', (m) => (m.archive.chunks[1].digest = A));
  rejects('number digest', (m) => (m.archive.chunks[0].digest = 1));
  rejects('missing digest', (m) => delete m.table.digest);
  rejects('commit uppercase', (m) => (m.commit = 'A'.repeat(40)));
  rejects('commit short', (m) => (m.commit = 'a'.repeat(39)));
  rejects('ref oid', (m) => (m.refs[0].oid = 'x'));
  rejects('ref peeled', (m) => (m.refs[1].peeled = 'a'.repeat(41)));
  rejects('ref peeled null', (m) => (m.refs[1].peeled = null));
});

test('parseManifest rejects negative, fractional, huge and non-number sizes', () => {
  for (const bad of [-1, 0.5, 1.5, 2 ** 53, LIMITS.maxArtifactSize + 1, Infinity, '10', null, true]) {
    rejects(`table.size ${bad}`, (m) => (m.table.size = bad));
    rejects(`pack.size ${bad}`, (m) => (m.headPacks[0].pack.size = bad));
    rejects(`idx.size ${bad}`, (m) => (m.historyPacks[0].idx.size = bad));
    rejects(`objects ${bad}`, (m) => (m.headPacks[0].objects = bad));
    rejects(`chunk.size ${bad}`, (m) => (m.archive.chunks[0].size = bad));
  }
  rejects('chunk rawSize fractional', (m) => {
    m.archive.chunks[0].rawSize = 9.5;
    m.archive.bytes = 14.5;
  });
  rejects('chunk rawSize >= 2^31', (m) => {
    m.archive.chunks[0].rawSize = 2 ** 31;
    m.archive.bytes = 2 ** 31 + 5;
  });
  rejects('objects >= 2^32', (m) => (m.headPacks[0].objects = 2 ** 32));
  rejects('table.entries too many', (m) => (m.table.entries = LIMITS.maxEntries + 1));
  rejects('table.rawSize >= 2 GiB', (m) => (m.table.rawSize = 2 ** 31));
  rejects('table.size beyond what zstd makes of rawSize', (m) => (m.table.size = m.table.rawSize + 200 * 1024));
  rejects('chunk.size beyond what zstd makes of rawSize', (m) => (m.archive.chunks[0].size = m.archive.chunks[0].rawSize + 200 * 1024));
  rejects('archive.bytes negative', (m) => (m.archive.bytes = -15));
  // At the limits: still accepted.
  const ok: any = JSON.parse(GOLDEN);
  ok.headPacks[0].pack.size = LIMITS.maxArtifactSize;
  ok.headPacks[0].objects = 2 ** 32 - 1;
  assert.doesNotThrow(() => parseManifest(raw(ok)));
});

test('an archive chunk may hold at most MAX_CHUNK_RAW (4 MiB) raw bytes: the client holds 12 of them', () => {
  assert.equal(MAX_CHUNK_RAW, 4 * 2 ** 20);
  rejects('chunk rawSize MAX_CHUNK_RAW + 1', (m) => {
    m.archive.chunks[0].rawSize = MAX_CHUNK_RAW + 1;
    m.archive.bytes = MAX_CHUNK_RAW + 1 + 5;
  });
  const ok: any = JSON.parse(GOLDEN);
  ok.archive.chunks[0].rawSize = MAX_CHUNK_RAW; // v1's fixed 4 MiB chunks
  ok.archive.bytes = MAX_CHUNK_RAW + 5;
  assert.equal(parseManifest(raw(ok)).archive.chunks[0]!.rawSize, MAX_CHUNK_RAW);
});

test('parseManifest rejects unsorted, duplicate and badly named refs', () => {
  rejects('unsorted', (m) => m.refs.reverse());
  rejects('duplicate', (m) => (m.refs[1] = { ...m.refs[0] }));
  rejects('dotdot', (m) => (m.refs[0].name = 'refs/heads/../x'));
  rejects('space', (m) => (m.refs[0].name = 'refs/heads/a b'));
  rejects('HEAD', (m) => (m.refs[0].name = 'HEAD'));
  rejects('refs/remotes', (m) => (m.refs[0].name = 'refs/notes/x'));
  rejects('lock', (m) => (m.refs[0].name = 'refs/heads/main.lock'));
  rejects('trailing slash', (m) => (m.refs[0].name = 'refs/heads/'));
  rejects('refs not a list', (m) => (m.refs = {}));
  rejects('ref not an object', (m) => (m.refs[0] = 'refs/heads/main'));
  rejects('manifest ref HEAD', (m) => (m.ref = 'HEAD'));
  rejects('manifest ref bad', (m) => (m.ref = 'refs/heads/a b'));
  rejects('manifest ref remote', (m) => (m.ref = 'refs/remotes/origin/main'));
  rejects('defaultBranch bad', (m) => (m.defaultBranch = 'a..b'));
  rejects('defaultBranch number', (m) => (m.defaultBranch = 1));
});

test('parseManifest rejects bad pack names and duplicates', () => {
  rejects('no prefix', (m) => (m.headPacks[0].name = B));
  rejects('uppercase', (m) => (m.headPacks[0].name = `pack-${'B'.repeat(40)}`));
  rejects('short', (m) => (m.headPacks[0].name = `pack-${'b'.repeat(39)}`));
  rejects('with suffix', (m) => (m.headPacks[0].name = `pack-${B}.pack`));
  rejects('path', (m) => (m.headPacks[0].name = `../pack-${B}`));
  rejects('duplicate within a list', (m) => m.headPacks.push(JSON.parse(JSON.stringify(m.headPacks[0]))));
  rejects('headPacks empty with a commit', (m) => (m.headPacks = []));
  rejects('headPacks not a list', (m) => (m.headPacks = null));
});

test('parseManifest rejects an archive whose chunks do not add up', () => {
  rejects('bytes too big', (m) => (m.archive.bytes = 16));
  rejects('bytes too small', (m) => (m.archive.bytes = 14));
  rejects('codec', (m) => (m.archive.codec = 'gzip'));
  rejects('chunks not a list', (m) => (m.archive.chunks = {}));
  rejects('archive missing', (m) => delete m.archive);
});

const emptyManifest = () => ({
  format: 'snapclone.manifest',
  version: 1,
  ref: 'refs/heads/main',
  commit: null,
  defaultBranch: null as string | null,
  refs: [] as unknown[],
  headPacks: [] as unknown[],
  historyPacks: [] as unknown[],
  table: { digest: D('e'), size: 13, entries: 0, rawSize: 12 },
  archive: { codec: 'zstd', bytes: 0, chunks: [] as unknown[] },
});

/** The build of a branch an upstream's HEAD names but nobody created: no commit, every ref, the history. */
const missingBranchManifest = () => ({
  ...emptyManifest(),
  ref: 'refs/heads/nosuch',
  defaultBranch: 'nosuch',
  refs: [
    { name: 'refs/heads/main', oid: A },
    { name: 'refs/tags/v1', oid: B, peeled: A },
  ] as unknown[],
  historyPacks: JSON.parse(GOLDEN).historyPacks as unknown[],
});

test('parseManifest rejects an empty-commit manifest that has content', () => {
  assert.doesNotThrow(() => parseManifest(raw(emptyManifest())));
  const withRefs = emptyManifest();
  withRefs.refs = [{ name: 'refs/heads/main', oid: A }];
  assert.throws(() => parseManifest(raw(withRefs)), isInvalid);
  const withEntries = emptyManifest();
  withEntries.table.entries = 1;
  assert.throws(() => parseManifest(raw(withEntries)), isInvalid);
  const withHead = emptyManifest();
  withHead.headPacks = JSON.parse(GOLDEN).headPacks;
  assert.throws(() => parseManifest(raw(withHead)), isInvalid);
  const withHistory = emptyManifest();
  withHistory.historyPacks = JSON.parse(GOLDEN).historyPacks;
  assert.throws(() => parseManifest(raw(withHistory)), isInvalid);
  const withChunks = emptyManifest();
  withChunks.archive = { codec: 'zstd', bytes: 10, chunks: [{ digest: D('4'), size: 30, rawSize: 10 }] };
  assert.throws(() => parseManifest(raw(withChunks)), isInvalid);
});

test('a manifest of a missing default branch (no commit, every ref, the history) round-trips', () => {
  const m = missingBranchManifest() as Manifest;
  assert.deepEqual(parseManifest(encodeManifest(m)), m);
});

test('parseManifest rejects a commit-less manifest that is not a missing branch with its history', () => {
  const bad = (what: string, change: (m: any) => void) => {
    const m: any = missingBranchManifest();
    change(m);
    assert.throws(() => parseManifest(raw(m)), isInvalid, what);
  };
  bad('names a ref that exists', (m) => (m.ref = 'refs/heads/main'));
  bad('a tag', (m) => (m.ref = 'refs/tags/nosuch'));
  bad('refs without history packs', (m) => (m.historyPacks = []));
  bad('head packs', (m) => (m.headPacks = JSON.parse(GOLDEN).headPacks));
  bad('table entries', (m) => (m.table.entries = 1));
  bad('followed tags', (m) => (m.followedTags = ['refs/tags/v1']));
  const m: any = missingBranchManifest();
  m.followedTags = [];
  assert.doesNotThrow(() => parseManifest(raw(m)), 'an empty followedTags is fine');
});

test('followedTags: optional, canonical, and only sorted names of tags the manifest lists', () => {
  const m = { ...sample(), followedTags: ['refs/tags/v1'] } as Manifest;
  const bytes = encodeManifest(m);
  assert.equal(bytes.toString('utf8'), GOLDEN.replace('"format"', '"followedTags":["refs/tags/v1"],"format"'));
  assert.deepEqual(parseManifest(bytes).followedTags, ['refs/tags/v1']);
  assert.equal('followedTags' in parseManifest(encodeManifest(sample())), false, 'absent stays absent');
  const two = (m: any) => m.refs.push({ name: 'refs/tags/v2', oid: C });
  rejects('not a list', (m) => (m.followedTags = 'refs/tags/v1'));
  rejects('not a string', (m) => (m.followedTags = [1]));
  rejects('a tag refs lacks', (m) => (m.followedTags = ['refs/tags/v9']));
  rejects('a branch', (m) => (m.followedTags = ['refs/heads/main']));
  rejects('repeated', (m) => (two(m), (m.followedTags = ['refs/tags/v1', 'refs/tags/v1'])));
  rejects('unsorted', (m) => (two(m), (m.followedTags = ['refs/tags/v2', 'refs/tags/v1'])));
  const ok: any = JSON.parse(JSON.stringify(sample()));
  two(ok);
  ok.followedTags = ['refs/tags/v1', 'refs/tags/v2'];
  assert.doesNotThrow(() => parseManifest(raw(ok)));
});

test('parseManifest rejects non-JSON, non-objects and oversize input', () => {
  for (const text of ['', '{', 'nul', '{"format":', '\u0000', '[]', 'null', '1', '"x"', 'true']) {
    assert.throws(() => parseManifest(Buffer.from(text)), isInvalid, JSON.stringify(text));
  }
  assert.throws(() => parseManifest(Buffer.from([0xff, 0xfe, 0x7b])), isInvalid);
  // Oversize: refused by length, before JSON parsing (the content is a valid manifest padded with spaces).
  const big = Buffer.alloc(LIMITS.maxManifestBytes + 1, 0x20);
  Buffer.from(GOLDEN).copy(big, 0);
  assert.throws(
    () => parseManifest(big),
    (e: unknown) => isInvalid(e) && /too large/.test((e as Error).message),
  );
});
