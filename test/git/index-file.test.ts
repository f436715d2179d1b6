import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { decodeIndex, encodeIndex, encodeIndexColumns, statFromLstat, type IndexColumns, type IndexEntry } from '../../src/git/index-file.js';
import { blobOid } from '../../src/git/pack.js';
import { SnapError } from '../../src/util/errors.js';
import { git, gitText, initRepo, tempRoot } from './helpers.js';

const root = tempRoot('git-index');
const isInvalid = (e: unknown) => e instanceof SnapError && e.code === 'invalid';
const P = (s: string) => Buffer.from(s, 'utf8');

function reseal(buf: Buffer): Buffer {
  const out = Buffer.from(buf);
  createHash('sha1').update(out.subarray(0, out.length - 20)).digest().copy(out, out.length - 20);
  return out;
}

// The work tree: every kind of entry git puts in an index, and names that test byte order
// ("dir.txt" < "dir/..." < "dir0", upper case before lower) and encoding.
const RAW = Buffer.concat([P('raw-'), Buffer.from([0xff, 0xfe]), P('-name.txt')]);
const REGULAR: Buffer[] = [
  'a.txt',
  'with space.txt',
  'dir/nested/deep.txt',
  'dir.txt',
  'dir0',
  'dir-x/y',
  'unicodé/日本語.txt',
  'Z-upper',
  'empty',
].map(P).concat([RAW]);
const EXEC = [P('bin/run.sh')];
const LINKS: [Buffer, string][] = [
  [P('link'), 'a.txt'],
  [P('dir/link-up'), '../a.txt'],
  [P('dangling'), 'does/not/exist'],
];
const GITLINK = P('sub');

function abs(repo: string, rel: Buffer): Buffer {
  return Buffer.concat([P(repo + '/'), rel]);
}

function content(rel: Buffer): Buffer {
  return rel.equals(P('empty')) ? Buffer.alloc(0) : Buffer.concat([P('content of '), rel, P('\n')]);
}

function makeWorkTree(name: string): { repo: string; headCommit: string } {
  const repo = initRepo(root, name);
  for (const rel of [...REGULAR, ...EXEC]) {
    const file = abs(repo, rel);
    fs.mkdirSync(file.subarray(0, file.lastIndexOf(0x2f)), { recursive: true });
    fs.writeFileSync(abs(repo, rel), content(rel));
  }
  for (const rel of EXEC) fs.chmodSync(abs(repo, rel), 0o755);
  for (const [rel, target] of LINKS) fs.symlinkSync(target, abs(repo, rel));
  git(repo, ['add', '-A']);
  git(repo, ['commit', '-q', '-m', 'files']);
  const first = gitText(repo, ['rev-parse', 'HEAD']);
  // A gitlink to an uninitialised submodule: git keeps an empty directory for it.
  fs.mkdirSync(abs(repo, GITLINK));
  git(repo, ['update-index', '--add', '--cacheinfo', `160000,${first},sub`]);
  git(repo, ['commit', '-q', '-m', 'gitlink']);
  return { repo, headCommit: first };
}

/** git ls-files --stage -z: mode, oid, stage and path of every entry. */
function lsStage(repo: string): { mode: number; oid: string; path: Buffer }[] {
  const out = git(repo, ['ls-files', '--stage', '-z']);
  const rows = [];
  let o = 0;
  while (o < out.length) {
    const nul = out.indexOf(0, o);
    const tab = out.indexOf(0x09, o);
    const [mode, oid, stage] = out.toString('latin1', o, tab).split(' ');
    assert.equal(stage, '0');
    rows.push({ mode: parseInt(mode!, 8), oid: oid!, path: Buffer.from(out.subarray(tab + 1, nul)) });
    o = nul + 1;
  }
  return rows;
}

/** git ls-files --debug -z: the stat data git reads from the index, as text. */
function lsDebug(repo: string): Map<string, string> {
  const out = git(repo, ['ls-files', '--debug', '-z']);
  const rows = new Map<string, string>();
  let o = 0;
  while (o < out.length) {
    const nul = out.indexOf(0, o);
    const name = out.toString('latin1', o, nul);
    const next = out.indexOf(P('flags: '), nul);
    const end = out.indexOf(0x0a, next);
    rows.set(name, out.toString('latin1', nul + 1, end + 1));
    o = end + 1;
  }
  return rows;
}

function debugText(e: IndexEntry): string {
  const s = e.stat;
  return (
    `  ctime: ${s.ctimeSec}:${s.ctimeNsec}\n  mtime: ${s.mtimeSec}:${s.mtimeNsec}\n` +
    `  dev: ${s.dev}\tino: ${s.ino}\n  uid: ${s.uid}\tgid: ${s.gid}\n  size: ${s.size}\tflags: 0\n`
  );
}

const ZERO_STAT = { ctimeSec: 0, ctimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, dev: 0, ino: 0, uid: 0, gid: 0, size: 0 };

/** The entries snapclone would write: modes and oids computed here, stat from lstat. */
function entriesFromWorkTree(repo: string, gitlinkOid: string): IndexEntry[] {
  const entries: IndexEntry[] = [];
  for (const rel of [...REGULAR, ...EXEC]) {
    const st = fs.lstatSync(abs(repo, rel), { bigint: true });
    const mode = (st.mode & 0o111n) !== 0n ? 0o100755 : 0o100644;
    entries.push({ path: rel, mode, oid: blobOid(fs.readFileSync(abs(repo, rel))), stat: statFromLstat(st) });
  }
  for (const [rel] of LINKS) {
    const st = fs.lstatSync(abs(repo, rel), { bigint: true });
    const target = fs.readlinkSync(abs(repo, rel), { encoding: 'buffer' });
    entries.push({ path: rel, mode: 0o120000, oid: blobOid(target), stat: statFromLstat(st) });
  }
  entries.push({ path: GITLINK, mode: 0o160000, oid: Buffer.from(gitlinkOid, 'hex'), stat: ZERO_STAT });
  return entries.sort((a, b) => Buffer.compare(a.path, b.path));
}

test("decodeIndex/encodeIndex reproduce git's own index", () => {
  const { repo } = makeWorkTree('roundtrip');
  git(repo, ['update-index', '--index-version', '2']);
  const gitIndex = fs.readFileSync(path.join(repo, '.git', 'index'));
  const d = decodeIndex(gitIndex);
  assert.equal(d.version, 2);
  assert.equal(d.entries.length, REGULAR.length + EXEC.length + LINKS.length + 1);
  assert.deepEqual(
    d.entries.map((e) => ({ mode: e.mode, oid: e.oid.toString('hex'), path: e.path })),
    lsStage(repo),
  );
  for (const e of d.entries) assert.equal(e.flags, e.path.length);
  const ours = encodeIndex(d.entries);
  // git adds a cache-tree (TREE) extension after a commit; the entries must match byte for byte.
  assert.deepEqual(ours.subarray(0, d.entriesEnd), gitIndex.subarray(0, d.entriesEnd));
  assert.deepEqual(
    d.extensions.map((x) => x.signature),
    ['TREE'],
  );
  assert.equal(ours.length, d.entriesEnd + 20);
});

test('encodeIndex is byte-identical to an extension-free index git writes, long paths included', () => {
  const { repo } = makeWorkTree('plain');
  const stage = git(repo, ['ls-files', '--stage', '-z']);
  // A path longer than the 12-bit length field: git saturates the field at 0xfff.
  const longPath = P('long/' + 'x'.repeat(200) + '/').toString().repeat(22) + 'end.txt';
  assert.ok(longPath.length > 0xfff);
  const blob = gitText(repo, ['hash-object', '-w', '--stdin'], { input: 'long\n' });
  const input = Buffer.concat([stage, P(`100644 ${blob} 0\t${longPath}\0`)]);
  const indexFile = path.join(root, 'plain.index');
  git(repo, ['update-index', '-z', '--index-info'], { input, env: { GIT_INDEX_FILE: indexFile } });
  const gitIndex = fs.readFileSync(indexFile);
  const d = decodeIndex(gitIndex);
  assert.equal(d.version, 2);
  assert.deepEqual(d.extensions, []);
  const long = d.entries.find((e) => e.path.length > 0xfff);
  assert.ok(long);
  assert.equal(long.path.toString(), longPath);
  assert.equal(long.flags, 0xfff);
  assert.deepEqual(encodeIndex(d.entries), gitIndex);
});

test("statFromLstat + encodeIndex, and encodeIndexColumns, give exactly the bytes git add writes", () => {
  const { repo, headCommit } = makeWorkTree('gitadd');
  const indexPath = path.join(repo, '.git', 'index');
  fs.rmSync(indexPath);
  git(repo, ['add', '-A']);
  git(repo, ['update-index', '--add', '--cacheinfo', `160000,${headCommit},sub`]);
  const gitIndex = fs.readFileSync(indexPath);
  const d = decodeIndex(gitIndex);
  assert.deepEqual(d.extensions, []);
  assert.deepEqual(encodeIndex(entriesFromWorkTree(repo, headCommit)), gitIndex);
  // The client's columnar encoder, from the same entries (gitlink and symlink included).
  assert.ok(d.entries.length > 5);
  assert.deepEqual(encodeIndexColumns(columns(d.entries)), gitIndex);
});

test('an index written from lstat data is clean to git', () => {
  const { repo, headCommit } = makeWorkTree('fromstat');
  // Old mtimes keep the entries out of git's racy-clean window, so git trusts the stat
  // data alone and any wrong field shows up as a modified entry.
  const t = new Date('2021-03-04T05:06:07.891Z');
  for (const rel of [...REGULAR, ...EXEC]) fs.utimesSync(abs(repo, rel), t, t);
  for (const [rel] of LINKS) fs.lutimesSync(abs(repo, rel), t, t);
  const entries = entriesFromWorkTree(repo, headCommit);
  const indexPath = path.join(repo, '.git', 'index');
  fs.rmSync(indexPath);
  fs.writeFileSync(indexPath, encodeIndex(entries));

  assert.deepEqual(
    lsStage(repo),
    entries.map((e) => ({ mode: e.mode, oid: e.oid.toString('hex'), path: e.path })),
  );
  const debug = lsDebug(repo);
  assert.equal(debug.size, entries.length);
  for (const e of entries) assert.equal(debug.get(e.path.toString('latin1')), debugText(e), e.path.toString());
  assert.equal(entries.find((e) => e.path.equals(P('a.txt')))!.stat.mtimeSec, Math.floor(t.getTime() / 1000));

  // diff-files does not refresh: it reports any entry whose stat data differs from lstat.
  assert.equal(git(repo, ['diff-files', '--name-only', '-z']).length, 0);
  assert.equal(git(repo, ['status', '--porcelain', '-z', '--untracked-files=all']).length, 0);
  assert.equal(git(repo, ['diff-index', '--cached', '--name-only', 'HEAD']).length, 0);
  const fsck = git(repo, ['fsck', '--full', '--strict', '--no-progress']).toString();
  assert.equal(fsck, '');

  // Control: the check above has teeth. One wrong inode and diff-files reports that entry.
  const wrong = entries.map((e) => (e.path.equals(P('a.txt')) ? { ...e, stat: { ...e.stat, ino: Number(e.stat.ino) + 1 } } : e));
  fs.writeFileSync(indexPath, encodeIndex(wrong));
  assert.equal(git(repo, ['diff-files', '--name-only', '-z']).toString(), 'a.txt\0');
});

test('decodeIndex reads version 3 extended flags', () => {
  const { repo } = makeWorkTree('v3');
  git(repo, ['update-index', '--skip-worktree', 'a.txt']);
  const d = decodeIndex(fs.readFileSync(path.join(repo, '.git', 'index')));
  assert.equal(d.version, 3);
  const a = d.entries.find((e) => e.path.equals(P('a.txt')))!;
  assert.equal(a.flags, 0x4000 | 5);
  assert.equal(a.extendedFlags, 0x4000); // CE_SKIP_WORKTREE >> 16
  assert.equal(d.entries.filter((e) => e.extendedFlags !== 0).length, 1);
  assert.deepEqual(
    d.entries.map((e) => ({ mode: e.mode, oid: e.oid.toString('hex'), path: e.path })),
    lsStage(repo),
  );
});

const OID = Buffer.alloc(20, 0xab);
const entry = (p: string | Buffer, stat: Partial<IndexEntry['stat']> = {}, mode = 0o100644): IndexEntry => ({
  path: typeof p === 'string' ? P(p) : p,
  mode,
  oid: OID,
  stat: { ...ZERO_STAT, ...stat },
});

test('entries are NUL-padded to a multiple of 8 bytes', () => {
  for (let n = 1; n <= 24; n++) {
    const buf = encodeIndex([entry('p'.repeat(n))]);
    const len = buf.length - 12 - 20;
    assert.equal(len % 8, 0);
    const pad = len - 62 - n;
    assert.ok(pad >= 1 && pad <= 8, `path length ${n}: ${pad} NULs`);
    assert.equal(decodeIndex(buf).entries[0]!.path.toString(), 'p'.repeat(n));
  }
  for (const n of [0xffe, 0xfff, 0x1000, 0x1234]) {
    const d = decodeIndex(encodeIndex([entry('q'.repeat(n))]));
    assert.equal(d.entries[0]!.path.length, n);
    assert.equal(d.entries[0]!.flags, Math.min(n, 0xfff));
  }
});

test('stat fields are truncated to 32 bits as git does', () => {
  const d = decodeIndex(
    encodeIndex([
      entry('a', { dev: 2 ** 40 + 5, ino: 2n ** 64n - 1n, uid: 2 ** 32 + 1, gid: 7, size: 2 ** 32 + 9, mtimeSec: 2 ** 32 + 3 }),
      entry('b', { size: 2 ** 32 }),
      entry('c', { size: 3n * 2n ** 32n }),
      entry('d', { size: 0, ctimeSec: -1 }),
    ]),
  );
  assert.deepEqual(d.entries[0]!.stat, { ...ZERO_STAT, dev: 5, ino: 0xffffffff, uid: 1, gid: 7, size: 9, mtimeSec: 3 });
  // A non-empty multiple of 4 GiB would read as 0, git's "racily clean" marker: git >= 2.43 writes 2^31.
  assert.equal(d.entries[1]!.stat.size, 0x80000000);
  assert.equal(d.entries[2]!.stat.size, 0x80000000);
  assert.equal(d.entries[3]!.stat.size, 0);
  assert.equal(d.entries[3]!.stat.ctimeSec, 0xffffffff);
});

test('encodeIndex rejects entries git would not accept', () => {
  const bad: [string, IndexEntry[]][] = [
    ['unsorted', [entry('b'), entry('a')]],
    ['file before dir order', [entry('a/b'), entry('a.txt')]],
    ['duplicate', [entry('a'), entry('a')]],
    ['empty path', [entry('')]],
    ['NUL in path', [entry(Buffer.from([0x61, 0, 0x62]))]],
    ['mode 100664', [entry('a', {}, 0o100664)]],
    ['mode 040000', [entry('a', {}, 0o40000)]],
    ['short oid', [{ ...entry('a'), oid: Buffer.alloc(19) }]],
    ['fractional stat', [entry('a', { mtimeNsec: 0.5 })]],
    ['NaN stat', [entry('a', { size: NaN })]],
  ];
  for (const [name, entries] of bad) assert.throws(() => encodeIndex(entries), isInvalid, name);
  assert.deepEqual(decodeIndex(encodeIndex([])).entries, []);
});

test('decodeIndex rejects corrupt input', () => {
  const good = encodeIndex([entry('a.txt', { size: 3 }), entry('b/c', { size: 4 })]);
  assert.equal(decodeIndex(good).entries.length, 2);
  for (let n = 0; n < good.length; n++) assert.throws(() => decodeIndex(good.subarray(0, n)), isInvalid, `length ${n}`);
  const cases: [string, (b: Buffer) => Buffer][] = [
    ['checksum', (b) => (b[b.length - 1]! ^= 1, b)],
    ['signature', (b) => (b[0] = 0x64, reseal(b))],
    ['version 4', (b) => (b.writeUInt32BE(4, 4), reseal(b))],
    ['huge count', (b) => (b.writeUInt32BE(0xffffffff, 8), reseal(b))],
    ['count + 1', (b) => (b.writeUInt32BE(3, 8), reseal(b))],
    ['padding not NUL', (b) => (b[12 + 62 + 5 + 1] = 0x41, reseal(b))],
    ['extended flag in v2', (b) => (b.writeUInt16BE(0x4000 | 5, 12 + 60), reseal(b))],
    ['name length too long', (b) => (b.writeUInt16BE(50, 12 + 60), reseal(b))],
    ['unterminated long name', (b) => (b.writeUInt16BE(0xfff, 12 + 60), reseal(b))],
    ['short extension', (b) => reseal(Buffer.concat([b.subarray(0, b.length - 20), P('TREE'), Buffer.alloc(20)]))],
    ['extension overruns', (b) => reseal(Buffer.concat([b.subarray(0, b.length - 20), P('TREE\0\0\0\x09'), Buffer.alloc(28)]))],
  ];
  for (const [name, mutate] of cases) assert.throws(() => decodeIndex(mutate(Buffer.from(good))), isInvalid, name);

  // Extensions are skipped; an all-zero checksum (index.skipHash) is accepted.
  const withExt = reseal(Buffer.concat([good.subarray(0, good.length - 20), P('ABCD\0\0\0\x03xyz'), Buffer.alloc(20)]));
  const d = decodeIndex(withExt);
  assert.deepEqual(d.extensions, [{ signature: 'ABCD', data: P('xyz') }]);
  assert.equal(d.entriesEnd, good.length - 20);
  const unhashed = Buffer.from(good);
  unhashed.fill(0, unhashed.length - 20);
  assert.equal(decodeIndex(unhashed).entries.length, 2);
});

/** The columns encodeIndexColumns takes, for entries given as objects (sizes: each entry's whole size). */
function columns(entries: readonly IndexEntry[], sizes = entries.map((e) => Number(e.stat.size))): IndexColumns {
  const pathStarts = new Uint32Array(entries.length + 1);
  entries.forEach((e, i) => (pathStarts[i + 1] = pathStarts[i]! + e.path.length));
  const stats = new Uint32Array(entries.length * 9);
  const keys = ['ctimeSec', 'ctimeNsec', 'mtimeSec', 'mtimeNsec', 'dev', 'ino', 'uid', 'gid', 'size'] as const;
  entries.forEach((e, i) => keys.forEach((k, f) => (stats[i * 9 + f] = Number(BigInt.asUintN(32, BigInt(e.stat[k]))))));
  return {
    count: entries.length,
    pathBytes: Buffer.concat(entries.map((e) => e.path)),
    pathStarts,
    modes: Uint32Array.from(entries.map((e) => e.mode)),
    oids: Buffer.concat(entries.map((e) => e.oid)),
    stats,
    sizes: Float64Array.from(sizes),
  };
}

test('encodeIndexColumns stores sizes as encodeIndex does (a multiple of 4 GiB as 2^31) and rejects what git would not accept', () => {
  const big = [entry('a', { size: 2 ** 32 + 9, dev: 2 ** 40 + 5 }), entry('b', { size: 2 ** 32 }), entry('c', { size: 0 }), entry('d', { size: 3 * 2 ** 32 })];
  assert.deepEqual(encodeIndexColumns(columns(big)), encodeIndex(big));
  assert.equal(decodeIndex(encodeIndexColumns(columns(big))).entries[1]!.stat.size, 0x80000000);
  assert.deepEqual(encodeIndexColumns(columns([])), encodeIndex([]));
  for (const [name, entries] of [
    ['empty path', [entry('')]],
    ['NUL in path', [entry(Buffer.from([0x61, 0, 0x62]))]],
    ['mode 100664', [entry('a', {}, 0o100664)]],
  ] as [string, IndexEntry[]][])
    assert.throws(() => encodeIndexColumns(columns(entries)), isInvalid, name);
});
