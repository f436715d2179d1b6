/**
 * Properties of the file table codec (src/clonepack/filetable.ts): valid tables
 * round-trip and yield exactly the directories their paths need; mutated and
 * random tables are decoded into entries that obey every rule, or refused with
 * a SnapError, without allocating for a forged count or path length.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeTable, decodeTableAndDirs, encodeTable, tableDirectories, MODE_EXEC, MODE_FILE, MODE_GITLINK, MODE_SYMLINK, NO_PACK, FLAG_CONVERTED, type TableEntry } from '../../src/clonepack/filetable.js';
import { pathProblem } from '../../src/clonepack/paths.js';
import { fuzzParams, mutated, parsesOrRefuses, randomBytes } from './fuzz-support.js';

const component = fc.oneof(
  fc.constantFrom('a', 'b', 'B', 'a.txt', 'a-b', 'é', 'src', 'x'.repeat(40), '.gitx', '..a'),
  fc.uint8Array({ minLength: 1, maxLength: 6 }).map((a) => Buffer.from(a.map((c) => (c === 0 || c === 0x2f ? 0x61 : c))).toString('latin1')),
);
const pathArb = fc.array(component, { minLength: 1, maxLength: 4 }).map((cs) => Buffer.from(cs.join('/'), 'latin1')).filter((p) => pathProblem(p) === null);

/** Valid tables: sorted unique paths, none below another entry, fields as the rules allow for `packCount` packs. */
export function validTable(): fc.Arbitrary<{ entries: TableEntry[]; packCount: number }> {
  const entry = fc.record({
    mode: fc.constantFrom(MODE_FILE, MODE_EXEC, MODE_SYMLINK, MODE_GITLINK),
    oid: fc.uint8Array({ minLength: 20, maxLength: 20 }),
    size: fc.oneof(fc.integer({ min: 0, max: 4096 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
    converted: fc.boolean(),
    pack: fc.nat(),
    packOffset: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    packLength: fc.integer({ min: 2, max: Number.MAX_SAFE_INTEGER }),
  });
  return fc.tuple(fc.uniqueArray(pathArb, { maxLength: 30, selector: (p) => p.toString('latin1') }), fc.array(entry, { minLength: 30, maxLength: 30 }), fc.integer({ min: 0, max: 3 })).map(([paths, fields, packCount]) => {
    paths.sort(Buffer.compare);
    // A path that is a parent directory of another cannot be an entry itself.
    const dirs = new Set(paths.flatMap((p) => [...p.toString('latin1').matchAll(/\//g)].map((m) => p.toString('latin1').slice(0, m.index))));
    const kept = paths.filter((p) => !dirs.has(p.toString('latin1')));
    const entries = kept.map((path, i): TableEntry => {
      const f = fields[i]!;
      if (f.mode === MODE_GITLINK) return { path, mode: f.mode, oid: Buffer.from(f.oid), size: 0, flags: 0, pack: NO_PACK, packOffset: 0, packLength: 0 };
      const size = f.mode === MODE_SYMLINK ? f.size % 4097 : f.size;
      const located = packCount > 0;
      return {
        path,
        mode: f.mode,
        oid: Buffer.from(f.oid),
        size,
        flags: f.converted ? FLAG_CONVERTED : 0,
        pack: located ? f.pack % packCount : NO_PACK,
        packOffset: located ? f.packOffset : 0,
        packLength: located ? f.packLength : 0,
      };
    });
    return { entries, packCount };
  });
}

/** Every ancestor directory of every path, plus the gitlinks, sorted: computed the slow, obvious way. */
function expectedDirs(entries: TableEntry[]): string[] {
  const out = new Set<string>();
  for (const e of entries) {
    const p = e.path.toString('latin1');
    for (let i = p.indexOf('/'); i > 0; i = p.indexOf('/', i + 1)) out.add(p.slice(0, i));
    if (e.mode === MODE_GITLINK) out.add(p);
  }
  return [...out].sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
}

test('valid tables round-trip, and the directories are every ancestor plus the gitlinks', () => {
  fc.assert(
    fc.property(validTable(), ({ entries, packCount }) => {
      const bytes = encodeTable(entries);
      const { entries: back, dirs } = decodeTableAndDirs(bytes, entries.length, packCount);
      assert.deepEqual(back.map((e) => ({ ...e, path: Buffer.from(e.path), oid: Buffer.from(e.oid) })), entries);
      assert.deepEqual(encodeTable(back), bytes);
      assert.deepEqual(dirs.map((d) => d.toString('latin1')), expectedDirs(entries));
    }),
    fuzzParams(300),
  );
});

/** What any accepted table must satisfy, whatever bytes it came from. */
function checkAccepted(entries: TableEntry[], packCount: number): void {
  let prev: Buffer | null = null;
  const leaves = new Set(entries.map((e) => e.path.toString('latin1')));
  for (const e of entries) {
    assert.equal(pathProblem(e.path), null);
    if (prev) assert.ok(Buffer.compare(prev, e.path) < 0, 'strict index order');
    prev = e.path;
    assert.ok([MODE_FILE, MODE_EXEC, MODE_SYMLINK, MODE_GITLINK].includes(e.mode));
    assert.ok(Number.isSafeInteger(e.size) && Number.isSafeInteger(e.packOffset) && Number.isSafeInteger(e.packLength));
    assert.ok(e.pack === NO_PACK ? packCount === 0 || e.mode === MODE_GITLINK : e.pack < packCount);
    const p = e.path.toString('latin1');
    for (let i = p.indexOf('/'); i > 0; i = p.indexOf('/', i + 1)) assert.ok(!leaves.has(p.slice(0, i)), `${p} lies below an entry`);
  }
}

/** Decode with the count the (possibly forged) header states, so the parser gets past the count check. */
function decodeAsHeaderSays(bytes: Buffer, packCount: number) {
  const count = bytes.length >= 12 ? bytes.readUInt32LE(8) : 0;
  return parsesOrRefuses(() => decodeTable(bytes, count, packCount));
}

test('mutated tables: decoded into entries that obey every rule, or refused with a SnapError', () => {
  fc.assert(
    fc.property(mutated(validTable().map((t) => encodeTable(t.entries))), fc.integer({ min: 0, max: 3 }), (bytes, packCount) => {
      const out = decodeAsHeaderSays(bytes, packCount);
      if (out.ok) checkAccepted(out.value, packCount);
    }),
    fuzzParams(1500),
  );
});

test('random bytes behind a valid header: refused with a SnapError or decoded validly', () => {
  const header = Buffer.from([0x53, 0x43, 0x46, 0x54, 1, 0, 0, 0]);
  fc.assert(
    fc.property(randomBytes(header, 2048), fc.integer({ min: 0, max: 3 }), (bytes, packCount) => {
      const out = decodeAsHeaderSays(bytes, packCount);
      if (out.ok) checkAccepted(out.value, packCount);
    }),
    fuzzParams(1500),
  );
});

test('a forged count or path length of up to 2^32-1 is refused before anything is allocated for it', () => {
  const one = encodeTable([{ path: Buffer.from('a'), mode: MODE_FILE, oid: Buffer.alloc(20), size: 1, flags: 0, pack: NO_PACK, packOffset: 0, packLength: 0 }]);
  for (const n of [2, 2 ** 16, 2 ** 31, 2 ** 32 - 1]) {
    const forged = Buffer.from(one);
    forged.writeUInt32LE(n, 8);
    assert.equal(decodeAsHeaderSays(forged, 0).ok, false, `count ${n}`);
    const longPath = Buffer.from(one);
    longPath.writeUInt32LE(n, 12 + 53);
    assert.equal(parsesOrRefuses(() => decodeTable(longPath, 1, 0)).ok, false, `path length ${n}`);
  }
});

/** Sorted unique paths, deep ones among them, where some may lie below others (which tableDirectories must refuse). */
const pathSets = fc
  .uniqueArray(
    fc.oneof(
      pathArb,
      fc.tuple(fc.constantFrom('a', 'b', 'a/a'), fc.integer({ min: 1, max: 300 }), fc.constantFrom('', '/f', '/g/h')).map(([p, depth, tail]) => Buffer.from(`${p}${'/d'.repeat(depth)}${tail}`)),
    ),
    { maxLength: 20, selector: (p) => p.toString('latin1') },
  )
  .map((ps) => ps.sort(Buffer.compare));

/** Whether some path lies below another path of the list (the quadratic way). */
function someLiesBelowAnother(paths: Buffer[]): boolean {
  const names = new Set(paths.map((p) => p.toString('latin1')));
  return paths.some((p) => {
    const s = p.toString('latin1');
    return [...s.matchAll(/\//g)].some((m) => names.has(s.slice(0, m.index)));
  });
}

test('tableDirectories agrees with the obvious quadratic computation: the same directories, and a refusal exactly when an entry lies below another', () => {
  const asEntry = (path: Buffer, i: number): TableEntry => ({ path, mode: i % 5 === 4 ? MODE_GITLINK : MODE_FILE, oid: Buffer.alloc(20), size: 0, flags: 0, pack: NO_PACK, packOffset: 0, packLength: 0 });
  fc.assert(
    fc.property(pathSets, (paths) => {
      const entries = paths.map(asEntry);
      const belowAnother = someLiesBelowAnother(paths);
      const out = parsesOrRefuses(() => tableDirectories(entries));
      assert.equal(out.ok, !belowAnother);
      if (out.ok) assert.deepEqual(out.value.map((d) => d.toString('latin1')), expectedDirs(entries));
    }),
    fuzzParams(1000),
  );
});

test('tableDirectories refuses exactly the lists that are not in strict byte order (a swap or a repeat anywhere)', () => {
  const asEntry = (path: Buffer): TableEntry => ({ path, mode: MODE_FILE, oid: Buffer.alloc(20), size: 0, flags: 0, pack: NO_PACK, packOffset: 0, packLength: 0 });
  fc.assert(
    fc.property(pathSets.filter((ps) => ps.length >= 2 && !someLiesBelowAnother(ps)), fc.nat(), fc.nat(), fc.boolean(), (paths, a, b, repeat) => {
      const i = a % paths.length;
      const j = b % paths.length;
      const list = [...paths];
      if (repeat) list.splice(i, 0, list[i]!);
      else [list[i], list[j]] = [list[j]!, list[i]!];
      const strict = list.every((p, k) => k === 0 || Buffer.compare(list[k - 1]!, p) < 0);
      assert.equal(parsesOrRefuses(() => tableDirectories(list.map(asEntry))).ok, strict);
    }),
    fuzzParams(1000),
  );
});

test('a table of deep paths (2,040 levels each) is decoded in memory linear in its size (was quadratic: 219 MiB for 200 KB)', () => {
  const entries: TableEntry[] = Array.from({ length: 50 }, (_, i) => ({
    path: Buffer.from(`b${String(i).padStart(4, '0')}/${'a/'.repeat(2040)}f`),
    mode: MODE_FILE,
    oid: Buffer.alloc(20),
    size: 0,
    flags: 0,
    pack: NO_PACK,
    packOffset: 0,
    packLength: 0,
  }));
  const bytes = encodeTable(entries);
  const out = parsesOrRefuses(() => decodeTableAndDirs(bytes, entries.length, 0));
  assert.ok(out.ok);
  assert.equal(out.value.dirs.length, 50 * 2041);
});

test('a refused path with DEL or C1 bytes (0x9b is a terminal CSI) is shown escaped in a one-line error', () => {
  const entry = (path: Buffer): TableEntry => ({ path, mode: MODE_FILE, oid: Buffer.alloc(20), size: 0, flags: 0, pack: NO_PACK, packOffset: 0, packLength: 0 });
  const leaf = Buffer.from([0x61, 0x9b, 0x32, 0x4a, 0x7f]);
  const out = parsesOrRefuses(() => decodeTable(encodeTable([entry(leaf), entry(Buffer.concat([leaf, Buffer.from('/x')]))]), 2, 0));
  assert.equal(out.ok, false);
  if (!out.ok) assert.match(out.error.message, /\\u009b2J\\u007f/);
});
