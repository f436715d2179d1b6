/**
 * Self-test of the end-to-end test support: the fixtures contain what they
 * claim, two `git clone`s compare as identical, and every kind of difference
 * is reported (so compareClones cannot pass vacuously).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { git, gitText, tmpDir } from '../support/git.js';
import { makeParityRepo, makeMediumRepo, makeEmptyRepo, makeMissingHeadRepo, type ParityRepo } from '../support/fixtures.js';
import { compareClones, showPath, type CompareOptions } from '../support/compare.js';

const root = tmpDir('selftest');
const timings: string[] = [];

function timed<T>(label: string, f: () => T): T {
  const t0 = performance.now();
  const r = f();
  timings.push(`${label}: ${Math.round(performance.now() - t0)} ms`);
  return r;
}

const parity: ParityRepo = timed('makeParityRepo', () => makeParityRepo(path.join(root, 'up')));

let cloneSeq = 0;
/** git clone into a fresh directory; returns its path. */
function clone(source: string, args: string[] = []): string {
  const dest = path.join(root, `clone-${++cloneSeq}`);
  git(['clone', '-q', ...args, source, dest], { cwd: root });
  return dest;
}

function b(s: string | Buffer): Buffer {
  return Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8');
}

function abs(dir: string, rel: string | Buffer): Buffer {
  return Buffer.concat([Buffer.from(dir + '/'), b(rel)]);
}

/** `git ls-tree -r -z <rev>` as entries with raw path bytes. */
function lsTree(repo: string, rev: string): Array<{ mode: string; type: string; oid: string; path: Buffer }> {
  const out = git(['ls-tree', '-r', '-z', rev], { cwd: repo });
  const entries: Array<{ mode: string; type: string; oid: string; path: Buffer }> = [];
  let i = 0;
  while (i < out.length) {
    const z = out.indexOf(0, i);
    const rec = out.subarray(i, z);
    const tab = rec.indexOf(0x09);
    const [mode, type, oid] = rec.subarray(0, tab).toString('latin1').split(' ') as [string, string, string];
    entries.push({ mode, type, oid, path: Buffer.from(rec.subarray(tab + 1)) });
    i = z + 1;
  }
  return entries;
}

test('parity fixture: HEAD tree covers every parity point', (t) => {
  const tree = lsTree(parity.path, 'HEAD');
  const byPath = new Map(tree.map((e) => [e.path.toString('latin1'), e]));
  const get = (p: string | Buffer) => byPath.get(b(p).toString('latin1'));

  // Gitlink.
  const gl = get(parity.submodule.path);
  assert.deepEqual(gl && { mode: gl.mode, type: gl.type, oid: gl.oid }, {
    mode: '160000',
    type: 'commit',
    oid: parity.submodule.commit,
  });
  assert.match(gitText(['show', 'HEAD:.gitmodules'], { cwd: parity.path }), /path = vendor\/sub\n\turl = \.\.\/sub-upstream/);

  // Executables and symlinks.
  for (const p of parity.paths.executables) assert.equal(get(p)?.mode, '100755', p);
  assert.equal(get('bin/not-exec.sh')?.mode, '100644');
  for (const s of parity.paths.symlinks) {
    const e = get(s.path);
    assert.equal(e?.mode, '120000', s.path);
    assert.deepEqual(git(['cat-file', 'blob', e!.oid], { cwd: parity.path }), s.target, s.path);
  }
  const nonUtf8Target = parity.paths.symlinkNonUtf8Target;
  assert.throws(() => new TextDecoder('utf-8', { fatal: true }).decode(nonUtf8Target));
  assert.ok(parity.paths.symlinks.find((s) => s.path === parity.paths.symlinkAbsolute)!.target.toString().startsWith('/'));

  // Names.
  const nonUtf8 = get(parity.paths.nonUtf8Name);
  assert.ok(nonUtf8, 'non-UTF-8 name in tree');
  assert.throws(() => new TextDecoder('utf-8', { fatal: true }).decode(parity.paths.nonUtf8Name));
  for (const n of parity.paths.oddNames) assert.ok(get(n), `odd name ${JSON.stringify(n)}`);
  assert.ok(parity.paths.oddNames.some((n) => n.includes('\n')));
  assert.ok(parity.paths.oddNames.some((n) => n.includes('\t')));
  assert.ok(parity.paths.oddNames.some((n) => n.includes('é')));
  assert.ok(parity.paths.oddNames.some((n) => n.includes('日本')));

  // Empty files, deep tree, large files, many files.
  const EMPTY_BLOB = 'e69de29bb2d1d6434b8b29ae775ad8c2e48c5391';
  for (const p of parity.paths.emptyFiles) assert.equal(get(p)?.oid, EMPTY_BLOB, p);
  assert.equal(parity.paths.deepFile.split('/').length, parity.paths.deepLevels + 1);
  assert.ok(get(parity.paths.deepFile));
  for (const f of [parity.paths.largeRandom, parity.paths.largeCompressible]) {
    assert.equal(Number(gitText(['cat-file', '-s', get(f.path)!.oid], { cwd: parity.path })), f.size, f.path);
  }
  assert.equal(tree.filter((e) => e.path.toString('latin1').startsWith(parity.paths.manyDir + '/')).length, parity.paths.manyCount);
  assert.ok(parity.paths.manyCount >= 300);

  // Attributes.
  assert.equal(gitText(['show', 'HEAD:.gitattributes'], { cwd: parity.path }) + '\n', parity.paths.attributes);
  for (const p of [parity.paths.crlfFile, parity.paths.identFile, parity.paths.utf16File, parity.paths.filterFile]) {
    assert.ok(get(p), p);
  }
  const crlfBlob = git(['cat-file', 'blob', get(parity.paths.crlfFile)!.oid], { cwd: parity.path });
  assert.ok(!crlfBlob.includes('\r'), 'eol=crlf blob is stored with LF');
  const identBlob = git(['cat-file', 'blob', get(parity.paths.identFile)!.oid], { cwd: parity.path });
  assert.ok(identBlob.toString().includes('$Id$'));
  const utf16Blob = git(['cat-file', 'blob', get(parity.paths.utf16File)!.oid], { cwd: parity.path });
  assert.equal(new TextDecoder('utf-8', { fatal: true }).decode(utf16Blob).includes('café 日本'), true);

  // History: renames, deletions, modifications, a merge; branches and tags.
  const log = gitText(['log', '--format=', '--name-status', '-M', 'HEAD'], { cwd: parity.path });
  assert.match(log, /^R\d+\tsrc\/old-name\.txt\tsrc\/new-name\.txt$/m);
  assert.match(log, /^D\tsrc\/to-delete\.txt$/m);
  assert.match(log, /^M\tsrc\/a\.txt$/m);
  assert.equal(gitText(['rev-list', '--merges', '--count', 'HEAD'], { cwd: parity.path }), '1');
  assert.equal(gitText(['rev-list', '--parents', '-n1', 'HEAD'], { cwd: parity.path }).split(' ').length, 3, 'HEAD is a merge');
  assert.equal(gitText(['symbolic-ref', 'HEAD'], { cwd: parity.path }), 'refs/heads/main');
  assert.deepEqual(Object.keys(parity.branches).sort(), ['dev', 'feature/x', 'main']);
  assert.equal(parity.branches.main, parity.head);
  const counts = gitText(['rev-list', '--left-right', '--count', 'main...dev'], { cwd: parity.path });
  assert.match(counts, /^[1-9]\d*\t[1-9]\d*$/, 'dev diverged from main');
  const { lightweight, annotatedOld, annotatedHead, dev } = parity.tagNames;
  assert.equal(parity.tags[lightweight]!.annotated, false);
  assert.equal(gitText(['cat-file', '-t', parity.tags[lightweight]!.oid], { cwd: parity.path }), 'commit');
  assert.equal(parity.tags[annotatedOld]!.annotated, true);
  assert.notEqual(parity.tags[annotatedOld]!.commit, parity.head);
  assert.equal(gitText(['cat-file', '-t', parity.tags[annotatedOld]!.oid], { cwd: parity.path }), 'tag');
  assert.equal(parity.tags[annotatedHead]!.annotated, true);
  assert.equal(parity.tags[annotatedHead]!.commit, parity.head);
  assert.equal(parity.tags[dev]!.commit, parity.branches.dev);
  // Tags on HEAD's trees and blobs (and tags of tags) versus tags on objects HEAD's closure lacks.
  const closure = new Set([parity.head, gitText(['rev-parse', `${parity.head}^{tree}`], { cwd: parity.path })]);
  for (const l of gitText(['ls-tree', '-r', '-t', parity.head], { cwd: parity.path }).split('\n')) closure.add(l.split(/\s/)[2]!);
  const onHead = parity.tagNames.onHeadObjects.map((n) => parity.tags[n]!);
  for (const t of onHead) assert.ok(closure.has(t.peeled), `${t.name} peels into HEAD's closure`);
  for (const n of parity.tagNames.offHeadObjects) assert.ok(!closure.has(parity.tags[n]!.peeled), `${n} peels outside HEAD's closure`);
  for (const type of ['tree', 'blob'] as const) {
    assert.ok(onHead.some((t) => t.peeledType === type && t.annotated), `an annotated tag on a ${type}`);
    assert.ok(onHead.some((t) => t.peeledType === type && !t.annotated), `a lightweight tag on a ${type}`);
  }
  const inner = gitText(['cat-file', '-p', parity.tags['nested-hidden']!.oid], { cwd: parity.path }).split('\n')[0]!.slice('object '.length);
  assert.equal(gitText(['cat-file', '-t', inner], { cwd: parity.path }), 'tag');
  assert.ok(!Object.values(parity.tags).some((t) => t.oid === inner), 'the inner tag of nested-hidden has no ref');
  t.diagnostic(`parity HEAD ${parity.head}, ${tree.length} entries`);
});

test('parity fixture: a git clone checks the attribute files out differently from their blobs', () => {
  const c = clone(parity.url);
  const blob = (p: string) => git(['cat-file', 'blob', `HEAD:${p}`], { cwd: c });
  const file = (p: string | Buffer) => fs.readFileSync(abs(c, p));

  const crlf = file(parity.paths.crlfFile);
  assert.deepEqual(crlf, Buffer.from(blob(parity.paths.crlfFile).toString().replace(/\n/g, '\r\n')));
  assert.ok(crlf.includes('\r\n'));

  const identOid = gitText(['rev-parse', `HEAD:${parity.paths.identFile}`], { cwd: c });
  assert.equal(file(parity.paths.identFile).toString(), `version: $Id: ${identOid} $\n`);

  const utf16 = file(parity.paths.utf16File);
  assert.deepEqual(utf16, Buffer.from(blob(parity.paths.utf16File).toString('utf8'), 'utf16le'));
  assert.notDeepEqual(utf16, blob(parity.paths.utf16File));

  assert.deepEqual(file(parity.paths.filterFile), blob(parity.paths.filterFile));

  // Other work-tree facts the comparator relies on.
  const gl = fs.lstatSync(path.join(c, parity.submodule.path));
  assert.ok(gl.isDirectory());
  assert.deepEqual(fs.readdirSync(path.join(c, parity.submodule.path)), []);
  assert.deepEqual(fs.readlinkSync(abs(c, parity.paths.symlinkNonUtf8), { encoding: 'buffer' }), parity.paths.symlinkNonUtf8Target);
  assert.ok(fs.lstatSync(abs(c, parity.paths.symlinkDangling)).isSymbolicLink());
  assert.ok(fs.existsSync(abs(c, parity.paths.nonUtf8Name)));
  for (const p of parity.paths.executables) assert.ok((fs.statSync(path.join(c, p)).mode & 0o111) !== 0, p);
  assert.equal(fs.statSync(path.join(c, 'bin/not-exec.sh')).mode & 0o111, 0);
  assert.equal(fs.statSync(path.join(c, parity.paths.largeRandom.path)).size, parity.paths.largeRandom.size);
});

test('parity fixture is deterministic', () => {
  const again = timed('makeParityRepo (again)', () => makeParityRepo(path.join(root, 'up-again')));
  assert.equal(again.head, parity.head);
  assert.deepEqual(again.branches, parity.branches);
  assert.deepEqual(
    Object.values(again.tags).map((t) => t.oid),
    Object.values(parity.tags).map((t) => t.oid),
  );
});

const variants: Array<{ name: string; args: () => string[] }> = [
  { name: 'full', args: () => [] },
  { name: '--depth 1', args: () => ['--depth', '1'] },
  { name: '--branch dev', args: () => ['--branch', 'dev'] },
  { name: '--branch <annotated tag>', args: () => ['--branch', parity.tagNames.annotatedOld] },
  { name: '--depth 1 --branch dev', args: () => ['--depth', '1', '--branch', 'dev'] },
  { name: '--depth 1 --branch <annotated tag on HEAD>', args: () => ['--depth', '1', '--branch', parity.tagNames.annotatedHead] },
];

for (const v of variants) {
  test(`two git clones of the parity repo compare as identical: ${v.name}`, () => {
    const a = timed(`git clone ${v.name}`, () => clone(parity.url, v.args()));
    const c = clone(parity.url, v.args());
    const diffs = timed(`compareClones editable (${v.name})`, () => compareClones(a, c, { mode: 'editable' }));
    assert.deepEqual(diffs, []);
    assert.deepEqual(compareClones(a, c, { mode: 'files' }), []);
    assert.deepEqual(compareClones(a, c, { mode: 'editable', permissions: 'full' }), []);
  });
}

test('the clone variants really differ from each other (no vacuous pass)', () => {
  const full = clone(parity.url);
  const shallow = clone(parity.url, ['--depth', '1']);
  const devClone = clone(parity.url, ['--branch', 'dev']);
  const tagClone = clone(parity.url, ['--branch', parity.tagNames.annotatedOld]);

  const s = compareClones(full, shallow, { mode: 'editable' });
  assert.ok(s.some((m) => m.startsWith('shallow: .git/shallow exists')), s.join('\n'));
  assert.ok(s.some((m) => m.startsWith('config: ')), 'single-branch refspec');
  assert.ok(s.some((m) => m.startsWith('objects: rev-list --all --objects: ') && m.includes('missing')));
  assert.deepEqual(compareClones(full, shallow, { mode: 'files' }), [], 'same work tree');

  const d = compareClones(full, devClone, { mode: 'editable' });
  assert.ok(d.some((m) => m.startsWith('HEAD: rev-parse HEAD')));
  assert.ok(d.some((m) => m === 'HEAD: symbolic-ref HEAD is refs/heads/dev, expected refs/heads/main'), d.join('\n'));
  assert.ok(d.some((m) => m.startsWith('worktree: extra file "dev-only.txt"')));
  assert.ok(d.some((m) => m.startsWith('worktree: missing file "README.md"')));
  assert.ok(d.some((m) => m.startsWith('diff -r: ')));

  const tg = compareClones(full, tagClone, { mode: 'editable' });
  assert.ok(tg.some((m) => m === 'HEAD: symbolic-ref HEAD is (detached), expected refs/heads/main'), tg.join('\n'));
  assert.ok(tg.includes('worktree: missing dir "vendor" (and 1 entry below it)'), tg.join('\n'));
  assert.ok(tg.some((m) => m.startsWith('worktree: missing dir "deep" (and 30 entries below it)')), tg.join('\n'));
});

test('empty upstream: two git clones compare as identical', () => {
  const empty = timed('makeEmptyRepo', () => makeEmptyRepo(path.join(root, 'empty-up'), { headBranch: 'trunk' }));
  const a = clone(empty.url);
  const c = clone(empty.url);
  assert.equal(gitText(['symbolic-ref', 'HEAD'], { cwd: a }), 'refs/heads/trunk');
  assert.deepEqual(compareClones(a, c, { mode: 'editable' }), []);
  const other = makeEmptyRepo(path.join(root, 'empty-up2'), { headBranch: 'main' });
  const o = clone(other.url);
  const diffs = compareClones(a, o, { mode: 'editable' });
  assert.ok(diffs.some((m) => m.startsWith('HEAD: symbolic-ref HEAD is refs/heads/main')), diffs.join('\n'));
});

test('missing-HEAD upstream: clones compare as identical; an index, a born HEAD, origin/HEAD or a reflog is reported', () => {
  const missing = timed('makeMissingHeadRepo', () => makeMissingHeadRepo(path.join(root, 'missing-head-up'), parity.path));
  const a = clone(missing.url);
  assert.equal(gitText(['symbolic-ref', 'HEAD'], { cwd: a }), 'refs/heads/nosuch');
  assert.equal(fs.existsSync(path.join(a, '.git/index')), false, 'git writes no index');
  assert.deepEqual(compareClones(a, clone(missing.url), { mode: 'editable' }), []);
  const s1 = clone(missing.url, ['--depth', '1']);
  assert.deepEqual(compareClones(s1, clone(missing.url, ['--depth', '1']), { mode: 'editable' }), []);
  const sd = compareClones(a, s1, { mode: 'editable' });
  assert.ok(sd.some((m) => m.startsWith('config: missing config entry "remote.origin.fetch=')), sd.join('\n'));
  assert.ok(sd.some((m) => m.startsWith('packed-refs: missing line')), sd.join('\n'));
  const cases: Array<{ name: string; apply: (d: string) => void; expect: RegExp }> = [
    { name: 'an empty index', apply: (d) => g(d, ['read-tree', '--empty']), expect: /^\.git: extra file \.git\/index$/ },
    { name: 'a born HEAD', apply: (d) => g(d, ['update-ref', 'refs/heads/nosuch', parity.head]), expect: /^HEAD: rev-parse HEAD is [0-9a-f]{40}, expected \(unborn\)$/ },
    {
      name: 'origin/HEAD',
      apply: (d) => g(d, ['symbolic-ref', 'refs/remotes/origin/HEAD', 'refs/remotes/origin/main']),
      expect: /^loose refs: extra loose ref refs\/remotes\/origin\/HEAD/,
    },
    {
      name: 'a reflog',
      apply: (d) => {
        fs.mkdirSync(path.join(d, '.git/logs'));
        fs.writeFileSync(path.join(d, '.git/logs/HEAD'), '');
      },
      expect: /^\.git: extra file \.git\/logs\/HEAD$/,
    },
  ];
  for (const c of cases) {
    const d = clone(missing.url);
    c.apply(d);
    const diffs = compareClones(a, d, { mode: 'editable' });
    assert.ok(diffs.some((m) => c.expect.test(m)), `${c.name}: ${diffs.join('\n')}`);
  }
});

test('medium fixture: history and identical clones', (t) => {
  const m = timed('makeMediumRepo (300 commits)', () => makeMediumRepo(path.join(root, 'medium-up')));
  assert.equal(m.commits, 300);
  assert.equal(Number(gitText(['rev-list', '--all', '--count'], { cwd: m.path })), 300);
  assert.ok(m.merges >= 3, `merges: ${m.merges}`);
  assert.equal(Number(gitText(['rev-list', '--merges', '--count', '--all'], { cwd: m.path })), m.merges);
  assert.deepEqual(Object.keys(m.branches).sort(), ['dev', 'main', 'release/1.x']);
  assert.match(gitText(['rev-list', '--left-right', '--count', 'main...dev'], { cwd: m.path }), /^[1-9]\d*\t[1-9]\d*$/);
  assert.ok(Object.values(m.tags).some((x) => x.annotated));
  assert.ok(Object.values(m.tags).some((x) => !x.annotated));
  const log = gitText(['log', '--format=', '--name-status', '-M', '--all'], { cwd: m.path });
  for (const kind of ['A', 'M', 'D']) assert.match(log, new RegExp(`^${kind}\\t`, 'm'));
  assert.match(log, /^R\d+\t/m);
  assert.ok(m.files > 50);
  t.diagnostic(`medium: ${m.commits} commits, ${m.merges} merges, ${m.files} files, head ${m.head}`);

  const again = makeMediumRepo(path.join(root, 'medium-up2'));
  assert.equal(again.head, m.head, 'deterministic');

  const a = timed('git clone medium', () => clone(m.url));
  const c = clone(m.url);
  assert.deepEqual(timed('compareClones medium', () => compareClones(a, c, { mode: 'editable' })), []);
  const s1 = clone(m.url, ['--depth', '1', '--branch', 'release/1.x']);
  const s2 = clone(m.url, ['--depth', '1', '--branch', 'release/1.x']);
  assert.deepEqual(compareClones(s1, s2, { mode: 'editable' }), []);
  assert.notDeepEqual(compareClones(a, s1, { mode: 'editable' }), []);

  const nb = makeMediumRepo(path.join(root, 'medium-nb'), { commits: 40, bare: false, seed: 7 });
  assert.equal(nb.commits, 40);
  assert.equal(gitText(['status', '--porcelain'], { cwd: nb.path }), '');
});

// ---------------------------------------------------------------------------
// Mutations: each on a fresh clone, each must be reported.

interface Mutation {
  name: string;
  apply: (dir: string) => void;
  /** Every pattern must match at least one reported difference. */
  expect: RegExp[];
  /** Also reported in files mode? (default: only if it touches the work tree) */
  filesMode?: 'reported' | 'silent';
  opts?: Partial<CompareOptions>;
}

function g(dir: string, args: string[], input?: string): string {
  return gitText(args, { cwd: dir, ...(input === undefined ? {} : { input }) });
}

const mutations: Mutation[] = [
  {
    name: 'change a byte in the large file',
    apply: (d) => {
      const fd = fs.openSync(path.join(d, parity.paths.largeRandom.path), 'r+');
      const buf = Buffer.alloc(1);
      fs.readSync(fd, buf, 0, 1, 10 * 2 ** 20);
      buf[0] = buf[0]! ^ 0x01;
      fs.writeSync(fd, buf, 0, 1, 10 * 2 ** 20);
      fs.closeSync(fd);
    },
    expect: [
      /^worktree: "large\/random\.bin" content differs at byte 10485760 \(same size 20971520\)$/,
      /^diff -r: Files .*large\/random\.bin .*differ$/,
      /^status: not clean: " M large\/random\.bin"$/,
      /^index: stat data of "large\/random\.bin" does not match/,
    ],
    filesMode: 'reported',
  },
  {
    name: 'append to the file with a non-UTF-8 name',
    apply: (d) => fs.appendFileSync(abs(d, parity.paths.nonUtf8Name), 'x'),
    expect: [/^worktree: "names\/latin1-\\xff\\xe9\.txt" content differs: 32 bytes, expected 31/],
    filesMode: 'reported',
  },
  {
    name: 'flip an exec bit',
    apply: (d) => fs.chmodSync(path.join(d, 'bin/run.sh'), 0o644),
    expect: [/^worktree: "bin\/run\.sh" executable bits 0o000, expected 0o111$/, /^status: not clean/],
    filesMode: 'reported',
  },
  {
    name: 'set an exec bit (group only)',
    apply: (d) => fs.chmodSync(path.join(d, 'src/a.txt'), 0o654),
    expect: [/^worktree: "src\/a\.txt" executable bits 0o010, expected 0o000$/],
    filesMode: 'reported',
  },
  {
    name: 'retarget a symlink',
    apply: (d) => {
      fs.unlinkSync(path.join(d, 'links/to-file'));
      fs.symlinkSync('../docs/guide.md', path.join(d, 'links/to-file'));
    },
    expect: [/^worktree: symlink "links\/to-file" points to "\.\.\/docs\/guide\.md", expected "\.\.\/README\.md"$/, /^diff -r: /],
    filesMode: 'reported',
  },
  {
    name: 'retarget the non-UTF-8 symlink',
    apply: (d) => {
      fs.unlinkSync(path.join(d, parity.paths.symlinkNonUtf8));
      fs.symlinkSync(Buffer.from([0x74, 0xfe]), path.join(d, parity.paths.symlinkNonUtf8));
    },
    expect: [/^worktree: symlink "links\/non-utf8" points to "t\\xfe", expected "target\\xff\\xfe"$/],
    filesMode: 'reported',
  },
  {
    name: 'replace a symlink by the file it points to',
    apply: (d) => {
      fs.unlinkSync(path.join(d, 'links/to-file'));
      fs.copyFileSync(path.join(d, 'README.md'), path.join(d, 'links/to-file'));
    },
    expect: [/^worktree: "links\/to-file" is a file, expected a symlink$/],
    filesMode: 'reported',
  },
  {
    name: 'delete the empty gitlink directory',
    apply: (d) => fs.rmdirSync(path.join(d, parity.submodule.path)),
    expect: [/^worktree: missing dir "vendor\/sub"$/, /^diff -r: Only in .*vendor: sub$/],
    filesMode: 'reported',
  },
  {
    name: 'add a file',
    apply: (d) => fs.writeFileSync(path.join(d, 'new file.txt'), 'hello\n'),
    expect: [/^worktree: extra file "new file\.txt"$/, /^status: not clean: "\?\? new file\.txt"$/, /^diff -r: Only in /],
    filesMode: 'reported',
  },
  {
    name: 'add an empty directory',
    apply: (d) => fs.mkdirSync(path.join(d, 'deep/d02/empty')),
    expect: [/^worktree: extra dir "deep\/d02\/empty"$/],
    filesMode: 'reported',
  },
  {
    name: 'unexpand the ident keyword',
    apply: (d) => fs.writeFileSync(path.join(d, parity.paths.identFile), 'version: $Id$\n'),
    expect: [/^worktree: "attr\/keyword\.id" content differs/],
    filesMode: 'reported',
  },
  {
    name: 'write the CRLF file with LF',
    apply: (d) => fs.writeFileSync(path.join(d, parity.paths.crlfFile), 'first line\nsecond line\nthird line\n'),
    expect: [/^worktree: "attr\/lines\.crlf" content differs: 34 bytes, expected 37/],
    filesMode: 'reported',
  },
  {
    name: 'touch a file (same content, new mtime)',
    apply: (d) => fs.utimesSync(path.join(d, 'README.md'), new Date(2001, 1, 1), new Date(2001, 1, 1)),
    expect: [/^index: stat data of "README\.md" does not match the work tree: mtime /],
    filesMode: 'silent',
  },
  {
    name: 'change a ref',
    apply: (d) => g(d, ['update-ref', 'refs/remotes/origin/dev', parity.head]),
    expect: [
      /^refs: missing ref "refs\/remotes\/origin\/dev [0-9a-f]{40} "$/,
      new RegExp(`^refs: extra ref "refs/remotes/origin/dev ${parity.head} "$`),
      new RegExp(`^loose refs: extra loose ref refs/remotes/origin/dev \\("${parity.head}\\\\n"\\)$`),
      /^\.git: extra file \.git\/refs\/remotes\/origin\/dev$/,
    ],
    filesMode: 'silent',
  },
  {
    name: 'drop a tag',
    apply: (d) => g(d, ['tag', '-d', parity.tagNames.annotatedOld]),
    expect: [/^refs: missing ref "refs\/tags\/v0\.1 [0-9a-f]{40} [0-9a-f]{40}"$/, /^packed-refs: missing line "[0-9a-f]{40} refs\/tags\/v0\.1"$/],
    filesMode: 'silent',
  },
  {
    name: 'pack refs (same refs, different files)',
    apply: (d) => g(d, ['pack-refs', '--all']),
    expect: [/^packed-refs: extra line "[0-9a-f]{40} refs\/heads\/main"$/, /^loose refs: missing loose ref refs\/heads\/main/],
    filesMode: 'silent',
  },
  {
    name: 'detach HEAD at the same commit',
    apply: (d) => g(d, ['update-ref', '--no-deref', 'HEAD', parity.head]),
    expect: [/^HEAD: symbolic-ref HEAD is \(detached\), expected refs\/heads\/main$/, /^\.git: \.git\/HEAD is "[0-9a-f]{40}\\n", expected "ref: refs\/heads\/main\\n"$/],
    filesMode: 'silent',
  },
  {
    name: 'modify .git/config',
    apply: (d) => g(d, ['config', 'core.foo', 'bar']),
    expect: [/^config: extra config entry "core\.foo=bar"$/],
    filesMode: 'silent',
  },
  {
    name: 'change remote.origin.url (and see ignoreConfigKeys work)',
    apply: (d) => g(d, ['config', 'remote.origin.url', 'https://example.com/other.git']),
    expect: [/^config: missing config entry "remote\.origin\.url=/, /^config: extra config entry "remote\.origin\.url=https:\/\/example\.com\/other\.git"$/],
    filesMode: 'silent',
  },
  {
    name: 'reorder config entries',
    apply: (d) => {
      const url = g(d, ['config', 'remote.origin.url']);
      g(d, ['config', '--unset', 'remote.origin.url']);
      g(d, ['config', 'remote.origin.url', url]);
    },
    expect: [/^config: entries in a different order/],
    filesMode: 'silent',
  },
  {
    name: 'touch .git/shallow',
    apply: (d) => fs.writeFileSync(path.join(d, '.git/shallow'), ''),
    expect: [/^shallow: \.git\/shallow exists \(""\) but should not$/, /^\.git: extra file \.git\/shallow$/],
    filesMode: 'silent',
  },
  {
    name: 'change an index entry mode',
    apply: (d) => g(d, ['update-index', '--chmod=+x', 'README.md']),
    expect: [/^index: "README\.md" mode 100755, expected 100644$/, /^status: not clean: "MM README\.md"$/],
    filesMode: 'silent',
  },
  {
    name: 'drop an index entry',
    apply: (d) => g(d, ['rm', '-q', '--cached', 'src/b.txt']),
    expect: [/^index: missing entry 100644 [0-9a-f]{40} "src\/b\.txt"$/],
    filesMode: 'silent',
  },
  {
    name: 'add an unreachable object',
    apply: (d) => g(d, ['hash-object', '-w', '--stdin'], 'stray object\n'),
    expect: [/^objects: object database: 1 extra, e\.g\. [0-9a-f]{40} blob$/],
    filesMode: 'silent',
  },
  {
    name: 'add objects/info/alternates',
    apply: (d) => fs.writeFileSync(path.join(d, '.git/objects/info/alternates'), parity.path + '/.git/objects\n'),
    expect: [/^\.git: extra file \.git\/objects\/info\/alternates$/],
    filesMode: 'silent',
  },
  {
    name: 'delete a hook sample',
    apply: (d) => fs.unlinkSync(path.join(d, '.git/hooks/pre-commit.sample')),
    expect: [/^\.git: missing file \.git\/hooks\/pre-commit\.sample$/],
    filesMode: 'silent',
  },
  {
    name: 'edit .git/description',
    apply: (d) => fs.writeFileSync(path.join(d, '.git/description'), 'mine\n'),
    expect: [/^\.git: \.git\/description is "mine\\n", expected "Unnamed repository/],
    filesMode: 'silent',
  },
  {
    name: 'rewrite a reflog message',
    apply: (d) => {
      const p = path.join(d, '.git/logs/HEAD');
      fs.writeFileSync(p, fs.readFileSync(p, 'utf8').replace('clone: from', 'snapclone: from'));
    },
    expect: [/^\.git: \.git\/logs\/HEAD is .*snapclone: from/],
    filesMode: 'silent',
  },
  {
    name: 'delete a loose object (corrupt repository)',
    apply: (d) => {
      const oid = g(d, ['rev-parse', `HEAD:${parity.paths.identFile}`]);
      fs.unlinkSync(path.join(d, '.git/objects', oid.slice(0, 2), oid.slice(2)));
    },
    expect: [/^fsck: git fsck --full --strict exited [1-9]/, /^fsck: missing blob/, /^objects: .* 1 missing/],
    filesMode: 'silent',
  },
];

test('a fresh clone pair (local path clones) compares as identical: the mutation baseline', () => {
  const e = clone(parity.path);
  const a = clone(parity.path);
  assert.deepEqual(compareClones(e, a, { mode: 'editable' }), []);
});

const baseline = { dir: '' };
for (const m of mutations) {
  test(`mutation is reported: ${m.name}`, () => {
    if (!baseline.dir) baseline.dir = clone(parity.path);
    const a = clone(parity.path);
    m.apply(a);
    const diffs = compareClones(baseline.dir, a, { mode: 'editable', ...m.opts });
    for (const re of m.expect) {
      assert.ok(diffs.some((d) => re.test(d)), `expected a difference matching ${re}, got:\n  ${diffs.join('\n  ')}`);
    }
    const files = compareClones(baseline.dir, a, { mode: 'files', ...m.opts });
    if (m.filesMode === 'reported') assert.notDeepEqual(files, [], 'files mode must report it too');
    else assert.deepEqual(files, [], 'files mode ignores .git and stat data');
  });
}

test('options: ignoreConfigKeys, allowExtraObjects, permissions, limit', () => {
  const e = clone(parity.path);
  const a = clone(parity.path);
  g(a, ['config', 'remote.origin.url', 'https://example.com/parity.git']);
  for (const log of ['HEAD', 'refs/heads/main', 'refs/remotes/origin/HEAD']) {
    const p = path.join(a, '.git/logs', log);
    if (!fs.existsSync(p)) continue;
    fs.writeFileSync(p, fs.readFileSync(p, 'utf8').replace(parity.path, 'https://example.com/parity.git'));
  }
  assert.notDeepEqual(compareClones(e, a, { mode: 'editable' }), []);
  assert.deepEqual(compareClones(e, a, { mode: 'editable', ignoreConfigKeys: ['remote.origin.url'] }), []);

  g(a, ['hash-object', '-w', '--stdin'], 'stray\n');
  assert.deepEqual(compareClones(e, a, { mode: 'editable', ignoreConfigKeys: ['remote.origin.url'], allowExtraObjects: true }), []);

  fs.chmodSync(path.join(a, 'docs'), 0o700);
  assert.deepEqual(compareClones(e, a, { mode: 'files' }), []);
  assert.deepEqual(compareClones(e, a, { mode: 'files', permissions: 'full' }), ['worktree: "docs" permissions 0o700, expected 0o755']);

  for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(a, `extra-${i}`), '');
  const limited = compareClones(e, a, { mode: 'files', limit: 5, diff: false });
  assert.equal(limited.length, 6);
  assert.equal(limited[5], 'worktree: ... and 35 more');
});

test('missing directories and a missing .git are reported, not thrown', () => {
  const e = clone(parity.path);
  assert.deepEqual(compareClones(e, path.join(root, 'nope'), { mode: 'files' }), [
    `actual directory ${path.join(root, 'nope')} does not exist`,
  ]);
  const filesOnly = clone(parity.path);
  fs.renameSync(path.join(filesOnly, '.git'), path.join(root, 'moved-away.git'));
  assert.deepEqual(compareClones(e, filesOnly, { mode: 'files' }), []);
  assert.deepEqual(compareClones(e, filesOnly, { mode: 'editable' }), [
    `.git: ${path.join(filesOnly, '.git')} is missing (or not a directory)`,
  ]);
});

test('showPath', () => {
  assert.equal(showPath(Buffer.from('a b\n')), '"a b\\n"');
  assert.equal(showPath(Buffer.from([0x61, 0xff, 0x22])), '"a\\xff\\""');
  assert.equal(showPath(Buffer.from('日本')), '"日本"');
});

test('fixture timings', (t) => {
  for (const line of timings) t.diagnostic(line);
});
