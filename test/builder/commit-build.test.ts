import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { git, gitText, tmpDir } from '../support/git.js';
import { BUILD_FORMAT, buildCommit, buildTagPack, chunkReuseKey, followedTags, zstdLevelFromEnv, type CommitBuild, type CommitBuildOptions, type CommitBuildStats, type ReuseIndex, type StoredChunk } from '../../src/builder/commit-build.js';
import { MODE_GITLINK } from '../../src/clonepack/filetable.js';
import { MAX_CHUNK_RAW } from '../../src/clonepack/manifest.js';
import type { LocalArtifactStore } from '../../src/storage/local/local-store.js';
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
    for (const c of b.archive?.chunks ?? []) {
      const key = chunkReuseKey(c);
      if (key !== null) r.chunks.set(key, { digest: c.digest, size: c.size, rawSize: c.rawSize });
    }
  }
  return r;
}

async function build(repo: string, commit: string, store: LocalArtifactStore, reuse: ReuseIndex, stats?: CommitBuildStats, options: Partial<CommitBuildOptions> = {}) {
  const shallow: CommitBuild[] = [];
  const files = await buildCommit({ mirrorDir: gitDir(repo), commit, scratchDir: tmpDir('build-scratch'), store, reuse, options: { ...SMALL, ...options }, stats }, async (b) => {
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
  // Where git's idx says each object of each pack is, and how long it is (up to the next
  // object in pack order, or to the 20-byte trailer).
  const spans = packs.map((p) => {
    const idx = git(['show-index'], { cwd: check, input: fs.readFileSync(path.join(check, '.git/objects/pack', `${p.name}.idx`)) }).toString();
    const rows = idx
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [offset, oid] = l.split(' ');
        return { offset: Number(offset), oid: oid! };
      })
      .sort((x, y) => x.offset - y.offset);
    const out = new Map<string, { offset: number; length: number }>();
    rows.forEach((r, i) => out.set(r.oid, { offset: r.offset, length: (i + 1 < rows.length ? rows[i + 1]!.offset : p.pack.size - 20) - r.offset }));
    return out;
  });
  const expected: Buffer[] = [];
  for (const e of table) {
    if (e.mode === MODE_GITLINK) continue;
    const blob = git(['cat-file', 'blob', e.oid.toString('hex')], { cwd: check });
    assert.equal(blob.length, e.size);
    expected.push(blob);
    assert.ok(e.pack >= 1, `entry ${e.path} points at the skeleton pack`);
    assert.deepEqual(spans[e.pack]!.get(e.oid.toString('hex')), { offset: e.packOffset, length: e.packLength }, `entry ${e.path} in pack ${e.pack}`);
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

function newStats(): CommitBuildStats {
  return { groups: 0, groupsReused: 0, chunks: 0, chunksReused: 0, newBytes: 0 };
}

test('a chunk compressed at another zstd level is not reused: the rebuild equals a cold build at the new level', async () => {
  const repo = newRepo();
  const text = (n: number) => Array.from({ length: 3000 }, (_, i) => `line ${(i * n) % 97} of a compressible file, ${i % 13}\n`).join('');
  const c = commitFiles(repo, { 'a.txt': text(3), 'b.txt': text(7) });
  const store = newStore();
  const low = await build(repo, c, store, emptyReuse(), undefined, { zstdLevel: 1 });
  const cold = await build(repo, c, newStore(), emptyReuse(), undefined, { zstdLevel: 19 });
  assert.notDeepEqual(low.files.archive, cold.files.archive, 'the levels give different frames');
  const stats = newStats();
  const again = await build(repo, c, store, reuseOf([low.files]), stats, { zstdLevel: 19 });
  assert.equal(stats.chunksReused, 0);
  assert.deepEqual(again.files, cold.files);
  // Same level: every chunk is reused.
  const same = newStats();
  assert.deepEqual((await build(repo, c, store, reuseOf([again.files]), same, { zstdLevel: 19 })).files, cold.files);
  assert.equal(same.chunksReused, same.chunks);
});

test('a stored chunk without a level or build format (a row from before they were recorded) is never reused', () => {
  const rawDigest = 'a'.repeat(64);
  assert.equal(chunkReuseKey({ rawDigest }), null);
  assert.equal(chunkReuseKey({ rawDigest, level: 6 }), null);
  const key = chunkReuseKey({ rawDigest, level: 6, format: BUILD_FORMAT });
  assert.ok(key !== null);
  assert.notEqual(key, chunkReuseKey({ rawDigest, level: 7, format: BUILD_FORMAT }));
  assert.notEqual(key, chunkReuseKey({ rawDigest, level: 6, format: BUILD_FORMAT + 1 }));
  // An old row as SQLite hands it back (JSON without level) parses and is skipped.
  const old = JSON.parse(JSON.stringify({ digest: 'b'.repeat(64), size: 10, rawSize: 10, rawDigest })) as StoredChunk;
  assert.equal(chunkReuseKey(old), null);
});

test('the zstd level must be an integer from 1 to 19: the variable and the option', async () => {
  assert.equal(zstdLevelFromEnv({}), 6);
  assert.equal(zstdLevelFromEnv({ SNAPCLONE_ZSTD_LEVEL: '' }), 6);
  assert.equal(zstdLevelFromEnv({ SNAPCLONE_ZSTD_LEVEL: '19' }), 19);
  for (const bad of ['1e9', '-7', '3.5', '0', '20', 'fast', ' 6x']) {
    assert.throws(() => zstdLevelFromEnv({ SNAPCLONE_ZSTD_LEVEL: bad }), /SNAPCLONE_ZSTD_LEVEL must be an integer from 1 to 19/, bad);
  }
  const repo = newRepo();
  const c = commitFiles(repo, { 'a.txt': 'a\n' });
  for (const bad of [1e9, -7, 3.5, 0]) {
    await assert.rejects(build(repo, c, newStore(), emptyReuse(), undefined, { zstdLevel: bad }), /zstd level must be an integer from 1 to 19/, String(bad));
  }
});

test('archive chunks larger than MAX_CHUNK_RAW (the client holds 12) are refused before anything is built', async () => {
  const repo = newRepo();
  const c = commitFiles(repo, { 'a.txt': 'a\n' });
  const store = newStore();
  const published: CommitBuild[] = [];
  const req = { mirrorDir: gitDir(repo), commit: c, scratchDir: tmpDir('build-scratch'), store, reuse: emptyReuse() };
  await assert.rejects(
    buildCommit({ ...req, options: { archive: { min: 1 << 20, avg: 2 << 20, max: MAX_CHUNK_RAW + 1 } } }, async (b) => void published.push(b)),
    /chunking: max 4194305 is larger than 4194304/,
  );
  assert.equal(published.length, 0);
  await buildCommit({ ...req, options: { archive: { min: 1 << 20, avg: 2 << 20, max: MAX_CHUNK_RAW } } }, async (b) => void published.push(b));
  assert.equal(published.length, 1);
});

test('a reuse entry whose pack does not hold its group is ignored: the group is packed again', async () => {
  const repo = newRepo();
  const a = commitFiles(repo, manyFiles(40, 3000, 6));
  const store = newStore();
  const first = await build(repo, a, store, emptyReuse());
  assert.ok(first.files.groups.length >= 3);
  const reuse = reuseOf([first.files]);
  const [g0, g1] = first.files.groups;
  reuse.groups.set(g0!.key, g1!.pack); // a wrong entry: another group's pack
  const stats = newStats();
  const again = await build(repo, a, store, reuse, stats);
  assert.deepEqual(again.shallow, first.shallow);
  assert.deepEqual(again.files, first.files);
  assert.equal(stats.groupsReused, stats.groups - 1);
  await verifyBuild(repo, again.files, store);
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
  let added = 0;
  const pack = await buildTagPack(gitDir(repo), refs.filter((r) => followed.includes(r.name)), tmpDir('tagpack'), store, (n) => (added += n));
  assert.ok(pack);
  assert.equal(pack.objects, 3); // ann, outer, treetag
  assert.equal(added, pack.pack.size + pack.idx.size, 'the new bytes of a tag pack are counted');
  assert.deepEqual(await buildTagPack(gitDir(repo), refs.filter((r) => followed.includes(r.name)), tmpDir('tagpack'), store, (n) => (added += n)), pack);
  assert.equal(added, pack.pack.size + pack.idx.size, 'a tag pack the store holds adds nothing');
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

test('followedTags lists a commit\'s tree at most once: not after buildCommit listed it, not on every call', async () => {
  const repo = newRepo();
  const c = commitFiles(repo, { 'a.txt': 'a\n', 'dir/b.txt': 'b\n' });
  const other = commitFiles(repo, { 'c.txt': 'c\n' });
  git(['tag', 'treetag', gitText(['rev-parse', `${c}:dir`], { cwd: repo })], { cwd: repo });
  git(['tag', 'blobtag', gitText(['rev-parse', `${c}:a.txt`], { cwd: repo })], { cwd: repo });
  const mirror = gitDir(repo);
  const refs = gitText(['for-each-ref', '--format=%(refname) %(objectname)', 'refs/tags'], { cwd: mirror })
    .split('\n')
    .map((l) => ({ name: l.split(' ')[0]!, oid: l.split(' ')[1]! }));
  const trace = path.join(tmpDir('git-trace'), 'trace');
  const lsTrees = () => (fs.existsSync(trace) ? fs.readFileSync(trace, 'utf8').split('\n').filter((l) => / ls-tree /.test(l)).length : 0);
  const saved = process.env.GIT_TRACE;
  process.env.GIT_TRACE = trace;
  try {
    await buildCommit({ mirrorDir: mirror, commit: other, scratchDir: tmpDir('build-scratch'), store: newStore(), reuse: emptyReuse(), options: SMALL }, async () => {});
    assert.equal(lsTrees(), 1);
    // `other` still has dir/ and a.txt: both tags follow it, answered from the build's listing.
    assert.deepEqual(await followedTags(mirror, other, refs), ['refs/tags/blobtag', 'refs/tags/treetag']);
    assert.equal(lsTrees(), 1);
    assert.deepEqual(await followedTags(mirror, c, refs), ['refs/tags/blobtag', 'refs/tags/treetag']);
    assert.equal(lsTrees(), 2);
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await followedTags(mirror, other, refs), ['refs/tags/blobtag', 'refs/tags/treetag']);
      assert.deepEqual(await followedTags(mirror, c, refs), ['refs/tags/blobtag', 'refs/tags/treetag']);
    }
    assert.equal(lsTrees(), 2);
  } finally {
    if (saved === undefined) delete process.env.GIT_TRACE;
    else process.env.GIT_TRACE = saved;
  }
});
