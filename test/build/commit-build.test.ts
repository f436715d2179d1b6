import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { git, gitText, tmpDir } from '../support/git.js';
import { buildCommit, buildTagPack, followedTags, type CommitBuild, type CommitBuildOptions, type CommitBuildStats, type ReuseIndex } from '../../src/build/commit-build.js';
import { MODE_GITLINK } from '../../src/clonepack/filetable.js';
import type { LocalArtifactStore } from '../../src/storage/local-store.js';
import { commitFiles, emptyRepo, gitDir, installPacks, manyFiles, newRepo, newStore, readArchive, readTable } from './helpers.js';

const SMALL: Partial<CommitBuildOptions> = {
  archive: { min: 2 << 10, avg: 8 << 10, max: 32 << 10 },
  groups: { min: 2 << 10, avg: 8 << 10, max: 32 << 10 },
};

function emptyReuse(): ReuseIndex {
  return { groups: new Map(), chunks: new Map() };
}

function reuseOf(builds: CommitBuild[]): ReuseIndex {
  const r = emptyReuse();
  for (const b of builds) {
    for (const g of b.groups) r.groups.set(g.key, g.pack);
    for (const c of b.archive?.chunks ?? []) r.chunks.set(c.rawDigest, { digest: c.digest, size: c.size, rawSize: c.rawSize });
  }
  return r;
}

async function build(repo: string, commit: string, store: LocalArtifactStore, reuse: ReuseIndex, stats?: CommitBuildStats) {
  const shallow: CommitBuild[] = [];
  const files = await buildCommit({ mirrorDir: gitDir(repo), commit, scratchDir: tmpDir('build-scratch'), store, reuse, options: SMALL, stats }, async (b) => {
    // The shallow stage is stored before it is handed over.
    for (const p of [b.skeleton, ...b.groups.map((g) => g.pack)]) {
      assert.ok(await store.stat(p.pack.digest));
      assert.ok(await store.stat(p.idx.digest));
    }
    assert.ok(await store.stat(b.table.digest));
    shallow.push(b);
  });
  assert.equal(shallow.length, 1);
  return { shallow: shallow[0]!, files };
}

/** Check a build with git: the head packs alone make a valid shallow repo at the commit, table and archive match it. */
async function verifyBuild(repo: string, b: CommitBuild, store: LocalArtifactStore): Promise<void> {
  const check = emptyRepo();
  const packs = [b.skeleton, ...b.groups.map((g) => g.pack)];
  await installPacks(store, packs, check);
  for (const p of packs) git(['verify-pack', path.join(check, '.git/objects/pack', `${p.name}.idx`)], { cwd: check });
  fs.writeFileSync(path.join(check, '.git/shallow'), `${b.commit}\n`);
  git(['update-ref', 'refs/heads/main', b.commit], { cwd: check });
  git(['fsck', '--strict', '--no-dangling'], { cwd: check });
  assert.equal(gitText(['ls-tree', '-r', '-t', '--full-tree', b.commit], { cwd: check }), gitText(['ls-tree', '-r', '-t', '--full-tree', b.commit], { cwd: repo }));
  const table = await readTable(store, b);
  const files = gitText(['ls-tree', '-r', '-z', '--full-tree', b.commit], { cwd: repo }).split('\0').filter(Boolean);
  assert.equal(table.length, files.length);
  const expected: Buffer[] = [];
  for (const e of table) {
    if (e.mode === MODE_GITLINK) continue;
    const blob = git(['cat-file', 'blob', e.oid.toString('hex')], { cwd: check });
    assert.equal(blob.length, e.size);
    expected.push(blob);
    // The table's slice is where git's idx says the blob is.
    const p = packs[e.pack]!;
    const idx = git(['show-index'], { cwd: check, input: fs.readFileSync(path.join(check, '.git/objects/pack', `${p.name}.idx`)) }).toString();
    assert.ok(idx.includes(`${e.packOffset} ${e.oid.toString('hex')}`), `entry ${e.path} not at ${e.packOffset} of pack ${e.pack}`);
  }
  if (b.archive) assert.ok(Buffer.concat(expected).equals(await readArchive(store, b)), 'archive is the table-ordered stream');
}

test('cold and incremental builds of a commit are byte-identical, and the incremental one reuses most groups and chunks', async () => {
  const repo = newRepo();
  const files = manyFiles(120, 3000, 1);
  const a = commitFiles(repo, { ...files, 'README.md': 'hello\n' });
  const edit = Object.keys(files)[60]!;
  const b = commitFiles(repo, { [edit]: Buffer.concat([files[edit]!.subarray(0, 100), Buffer.from('changed'), files[edit]!.subarray(100)]), 'src/new.txt': 'new file\n' });

  const cold = await build(repo, b, newStore(), emptyReuse());
  const store = newStore();
  const first = await build(repo, a, store, emptyReuse());
  const stats: CommitBuildStats = { groups: 0, groupsReused: 0, chunks: 0, chunksReused: 0, newBytes: 0 };
  const incremental = await build(repo, b, store, reuseOf([first.files]), stats);

  assert.deepEqual(incremental.files, cold.files);
  assert.deepEqual(incremental.shallow, cold.shallow);
  assert.equal(cold.shallow.stage, 'shallow');
  assert.equal(cold.shallow.archive, null);
  assert.equal(cold.files.stage, 'files');
  assert.ok(cold.files.groups.length >= 20, `${cold.files.groups.length} groups`);
  assert.ok(stats.groupsReused >= stats.groups - 4, `reused ${stats.groupsReused} of ${stats.groups} groups`);
  assert.ok(stats.chunksReused >= stats.chunks - 4, `reused ${stats.chunksReused} of ${stats.chunks} chunks`);
  const total = [incremental.files.skeleton, ...incremental.files.groups.map((g) => g.pack)].reduce((s, p) => s + p.pack.size + p.idx.size, 0) + incremental.files.archive!.chunks.reduce((s, c) => s + c.size, 0);
  assert.ok(stats.newBytes < total / 4, `new ${stats.newBytes} of ${total}`);
  await verifyBuild(repo, incremental.files, store);
});

test('a reused group or chunk the store lost is built again', async () => {
  const repo = newRepo();
  const a = commitFiles(repo, manyFiles(40, 3000, 2));
  const store = newStore();
  const first = await build(repo, a, store, emptyReuse());
  // A second store never saw those artifacts: the reuse index must not be trusted blindly.
  const other = newStore();
  const stats: CommitBuildStats = { groups: 0, groupsReused: 0, chunks: 0, chunksReused: 0, newBytes: 0 };
  const again = await build(repo, a, other, reuseOf([first.files]), stats);
  assert.equal(stats.groupsReused, 0);
  assert.equal(stats.chunksReused, 0);
  assert.deepEqual(again.files, first.files);
  await verifyBuild(repo, again.files, other);
});

test('a file deleted in one commit and re-added later is in the table and the packs', async () => {
  const repo = newRepo();
  const files = manyFiles(60, 2500, 3);
  const a = commitFiles(repo, { ...files, 'docs/keep.md': 'keep me\n' });
  const b = commitFiles(repo, { 'docs/keep.md': null, 'src/f0030.bin': null });
  const c = commitFiles(repo, { 'docs/keep.md': 'keep me\n', 'src/f0030.bin': files['src/f0030.bin']!, 'other.txt': 'x\n' });
  const store = newStore();
  const builds: CommitBuild[] = [];
  for (const commit of [a, b, c]) builds.push((await build(repo, commit, store, reuseOf(builds))).files);
  const last = builds[2]!;
  const table = await readTable(store, last);
  const names = table.map((e) => e.path.toString());
  assert.ok(names.includes('docs/keep.md') && names.includes('src/f0030.bin'));
  await verifyBuild(repo, last, store);
  await verifyBuild(repo, builds[1]!, store);
});

test('converted files: the shallow stage already carries the archive', async () => {
  const repo = newRepo();
  const c = commitFiles(repo, { '.gitattributes': '*.txt eol=crlf\n', 'a.txt': 'one\ntwo\n', 'b.bin': 'raw\n' });
  const store = newStore();
  const { shallow, files } = await build(repo, c, store, emptyReuse());
  assert.equal(shallow.converted, true);
  assert.ok(shallow.archive && shallow.archive.chunks.length > 0);
  assert.deepEqual(files.archive, shallow.archive);
  const stream = (await readArchive(store, files)).toString();
  assert.ok(stream.includes('one\r\ntwo\r\n'));
});

test('submodules (gitlinks) and symlinks go into the table; a non-commit is refused', async () => {
  const repo = newRepo();
  const c = commitFiles(repo, { 'a.txt': 'a\n' });
  fs.symlinkSync('a.txt', path.join(repo, 'link'));
  git(['add', 'link'], { cwd: repo });
  git(['update-index', '--add', '--cacheinfo', `160000,${c},sub`], { cwd: repo });
  git(['commit', '-q', '-m', 'links'], { cwd: repo, date: 1577836800 });
  const d = gitText(['rev-parse', 'HEAD'], { cwd: repo });
  const store = newStore();
  const { files } = await build(repo, d, store, emptyReuse());
  const table = await readTable(store, files);
  assert.deepEqual(table.map((e) => e.path.toString()), ['a.txt', 'link', 'sub']);
  assert.equal((await readArchive(store, files)).toString(), 'a\na.txt');
  const tree = gitText(['rev-parse', `${d}^{tree}`], { cwd: repo });
  await assert.rejects(build(repo, tree, store, emptyReuse()), /not a commit/);
});

test('followedTags and buildTagPack: tags of the commit, its trees and blobs; tag chains in their own pack', async () => {
  const repo = newRepo();
  const c1 = commitFiles(repo, { 'a.txt': 'a\n', 'dir/b.txt': 'b\n' });
  const c2 = commitFiles(repo, { 'c.txt': 'c\n' });
  const blob = gitText(['rev-parse', `${c2}:a.txt`], { cwd: repo });
  const tree = gitText(['rev-parse', `${c2}:dir`], { cwd: repo });
  git(['tag', 'light', c2], { cwd: repo });
  git(['tag', '-a', '-m', 'annotated', 'ann', c2], { cwd: repo });
  git(['tag', '-a', '-m', 'of a tag', 'outer', 'ann'], { cwd: repo });
  git(['tag', 'old', c1], { cwd: repo });
  git(['tag', 'blobtag', blob], { cwd: repo });
  git(['tag', '-a', '-m', 'tree', 'treetag', tree], { cwd: repo });
  const refs = gitText(['for-each-ref', '--format=%(refname) %(objectname) %(*objectname)', 'refs/tags'], { cwd: repo })
    .split('\n')
    .map((l) => {
      const [name, oid, peeled] = l.split(' ');
      let p = peeled || undefined;
      if (p) p = gitText(['rev-parse', `${oid}^{}`], { cwd: repo });
      return { name: name!, oid: oid!, ...(p ? { peeled: p } : {}) };
    });
  const followed = await followedTags(gitDir(repo), c2, refs);
  assert.deepEqual(followed, ['refs/tags/ann', 'refs/tags/blobtag', 'refs/tags/light', 'refs/tags/outer', 'refs/tags/treetag']);
  const store = newStore();
  const pack = await buildTagPack(gitDir(repo), refs.filter((r) => followed.includes(r.name)), tmpDir('tagpack'), store);
  assert.ok(pack);
  assert.equal(pack.objects, 3); // ann, outer, treetag
  assert.equal(await buildTagPack(gitDir(repo), refs.filter((r) => r.name === 'refs/tags/light'), tmpDir('tagpack'), store), null);
  // The tag pack plus the head packs make the tags resolvable in a fresh repository.
  const { files } = await build(repo, c2, store, emptyReuse());
  const check = emptyRepo();
  await installPacks(store, [files.skeleton, ...files.groups.map((g) => g.pack), pack], check);
  fs.writeFileSync(path.join(check, '.git/shallow'), `${c2}\n`);
  const outer = refs.find((r) => r.name === 'refs/tags/outer')!;
  git(['update-ref', 'refs/tags/outer', outer.oid], { cwd: check });
  git(['fsck', '--strict', '--no-dangling'], { cwd: check });
  assert.equal(gitText(['rev-parse', 'outer^{commit}'], { cwd: check }), c2);
});
