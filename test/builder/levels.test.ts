import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { git, gitText, gitTry, tmpDir } from '../support/git.js';
import { updateLevels, MAX_LEVELS, type HistoryLevel } from '../../src/builder/levels.js';
import { LocalArtifactStore } from '../../src/storage/local/local-store.js';
import { commitFiles, emptyRepo, gitDir, installPacks, manyFiles, newRepo, newStore, packObjectIds, revListObjects } from './helpers.js';

function tipsOf(mirror: string): string[] {
  return gitText(['for-each-ref', '--format=%(objectname)', 'refs/heads', 'refs/tags'], { cwd: mirror }).split('\n').filter(Boolean);
}

async function sync(repo: string, store: LocalArtifactStore, levels: HistoryLevel[]) {
  const mirror = gitDir(repo);
  return { mirror, ...(await updateLevels({ mirrorDir: mirror, levels, tips: tipsOf(mirror), scratchDir: tmpDir('levels-scratch'), store })) };
}

async function levelObjects(store: LocalArtifactStore, level: HistoryLevel, cwd: string): Promise<string[]> {
  const out: string[] = [];
  for (const p of level.packs) out.push(...(await packObjectIds(store, p, cwd)));
  return out.sort();
}

/** The chain holds exactly what the mirror's refs reach, each object once. */
async function assertChainIsMirror(store: LocalArtifactStore, levels: HistoryLevel[], mirror: string): Promise<string[][]> {
  const per = [];
  for (const l of levels) per.push(await levelObjects(store, l, mirror));
  const all = per.flat();
  assert.equal(new Set(all).size, all.length, 'levels are disjoint');
  assert.deepEqual([...all].sort(), revListObjects(mirror, ['--all']));
  return per;
}

test('new commits pack only new objects; a sync with nothing new changes nothing; a new ref at a known commit adds a packless level', async () => {
  const repo = newRepo();
  const store = newStore();
  const a0 = commitFiles(repo, { 'first.txt': 'first\n' });
  commitFiles(repo, manyFiles(30, 2000, 1));
  const first = await sync(repo, store, []);
  assert.equal(first.changed, true);
  assert.equal(first.levels.length, 1);
  assert.ok(first.newBytes > 0);
  const a = gitText(['rev-parse', 'HEAD'], { cwd: repo });

  const b = commitFiles(repo, { 'src/added.txt': 'new\n' });
  const second = await sync(repo, store, first.levels);
  assert.equal(second.changed, true);
  const per = await assertChainIsMirror(store, second.levels, second.mirror);
  assert.deepEqual(second.levels[0], first.levels[0], 'the old level is kept as it was');
  assert.deepEqual(per[per.length - 1], revListObjects(second.mirror, [b, `^${a}`]));
  assert.equal(per[per.length - 1]!.length, 4); // commit, root tree, src tree, blob

  const noop = await sync(repo, store, second.levels);
  assert.equal(noop.changed, false);
  assert.equal(noop.newBytes, 0);
  assert.equal(noop.levels, second.levels);

  git(['branch', 'other', a0], { cwd: repo }); // reachable, but never a tip: no objects to add
  const branch = await sync(repo, store, second.levels);
  assert.equal(branch.changed, true);
  assert.equal(branch.newBytes, 0);
  assert.equal(branch.levels.length, second.levels.length + 1);
  assert.deepEqual(branch.levels.at(-1), { packs: [], tips: [a0], bytes: 0 });
  await assertChainIsMirror(store, branch.levels, branch.mirror);
  git(['branch', '-D', 'other'], { cwd: repo });
  const deleted = await sync(repo, store, branch.levels);
  assert.equal(deleted.changed, false, 'a deleted branch adds nothing');
});

test('levels stay disjoint when a file is deleted and re-added', async () => {
  const repo = newRepo();
  const store = newStore();
  const files = manyFiles(20, 2000, 2);
  commitFiles(repo, files);
  commitFiles(repo, { 'src/f0005.bin': null });
  commitFiles(repo, { 'y.txt': 'y\n' });
  // The first level's tip has no f0005 in its tree; only its history does. A walk
  // `new ^tip` stops at the tip and lists the re-added blob again.
  const levels = (await sync(repo, store, [])).levels;
  commitFiles(repo, { 'src/f0005.bin': files['src/f0005.bin']!, 'x.txt': 'x\n' });
  const r = await sync(repo, store, levels);
  await assertChainIsMirror(store, r.levels, r.mirror);
});

test('force push: compaction repacks from current tips and drops the garbage; a gc-ed mirror falls back to full compaction', async () => {
  const repo = newRepo();
  const store = newStore();
  commitFiles(repo, manyFiles(40, 4000, 3));
  let r = await sync(repo, store, []);
  const base = gitText(['rev-parse', 'HEAD'], { cwd: repo });
  const garbage = commitFiles(repo, manyFiles(3, 4000, 4, 'g'));
  r = await sync(repo, store, r.levels);
  assert.equal(r.levels.length, 2);
  git(['reset', '-q', '--hard', base], { cwd: repo });
  commitFiles(repo, manyFiles(3, 4000, 5, 'h'));
  r = await sync(repo, store, r.levels);
  // The two small levels were merged (the older one is < 2x the new one) from the current tips.
  assert.equal(r.levels.length, 2);
  const per = await assertChainIsMirror(store, r.levels, r.mirror);
  assert.ok(!per.flat().includes(garbage));
  assert.ok(gitText(['cat-file', '-t', garbage], { cwd: r.mirror }) === 'commit', 'garbage is still in the mirror, just unreachable');

  // Now a level covers a tip the mirror lost (force push, then gc): start over from the tips.
  const tip = gitText(['rev-parse', 'HEAD'], { cwd: repo });
  const lost = commitFiles(repo, { 'lost.txt': 'lost\n' });
  r = await sync(repo, store, r.levels);
  assert.ok(r.levels.some((l) => l.tips.includes(lost)));
  git(['reset', '-q', '--hard', tip], { cwd: repo });
  commitFiles(repo, { 'kept.txt': 'kept\n' });
  const mirror = gitDir(repo);
  git(['reflog', 'expire', '--expire=now', '--all'], { cwd: mirror });
  git(['gc', '-q', '--prune=now'], { cwd: mirror });
  assert.notEqual(gitTry(['cat-file', '-e', lost], { cwd: mirror }).status, 0, 'gc removed the lost commit');
  r = await sync(repo, store, r.levels);
  assert.equal(r.levels.length, 1);
  await assertChainIsMirror(store, r.levels, r.mirror);
});

test('the chain stays within MAX_LEVELS and, written into an empty repository, is the source history (git fsck --strict)', async () => {
  const repo = newRepo();
  const store = newStore();
  let levels: HistoryLevel[] = [];
  for (let i = 0; i < 8; i++) {
    commitFiles(repo, manyFiles(2 + i, 1500, 10 + i, `d${i}`));
    levels = (await sync(repo, store, levels)).levels;
  }
  for (let i = 0; i < 20; i++) commitFiles(repo, { [`small${i}.txt`]: `${i}\n` });
  levels = (await sync(repo, store, levels)).levels;
  // Lightweight tags on existing commits add packless levels (bytes 0), which the geometric
  // rule never merges (0 < 2 * 0 is false): only the cap keeps the chain at MAX_LEVELS.
  const commits = gitText(['rev-list', 'HEAD'], { cwd: repo }).split('\n');
  assert.ok(commits.length >= 28); // commits[1..19] are the small ones, none of them a tip
  let longest = 0;
  for (let i = 1; i <= 16; i++) {
    git(['tag', `t${i}`, commits[i]!], { cwd: repo });
    const r = await sync(repo, store, levels);
    assert.equal(r.changed, true);
    assert.equal(r.newBytes, 0, 'a tag on a known commit packs nothing');
    levels = r.levels;
    assert.ok(levels.length <= MAX_LEVELS, `${levels.length} levels`);
    longest = Math.max(longest, levels.length);
  }
  assert.equal(longest, MAX_LEVELS, 'the chain reached the cap');
  git(['branch', 'side', commits[3]!], { cwd: repo });
  const r = await sync(repo, store, levels);
  await assertChainIsMirror(store, r.levels, r.mirror);

  const check = emptyRepo();
  await installPacks(store, r.levels.flatMap((l) => l.packs), check);
  const refs = gitText(['for-each-ref', '--format=%(objectname) %(refname)'], { cwd: r.mirror });
  fs.writeFileSync(path.join(check, '.git/packed-refs'), `${refs}\n`);
  git(['fsck', '--strict', '--no-dangling'], { cwd: check });
  assert.deepEqual(revListObjects(check, ['--all']), revListObjects(r.mirror, ['--all']));
  for (const l of r.levels) for (const p of l.packs) git(['verify-pack', path.join(check, '.git/objects/pack', `${p.name}.idx`)], { cwd: check });
});

test('a level larger than maxPackBytes is split into self-contained packs, deltas included', async () => {
  const repo = newRepo();
  const store = newStore();
  // Large text files edited a little in many commits: most versions are stored as deltas,
  // so a split can go wrong only one way, a delta whose base sits in a sibling pack.
  const base = manyFiles(24, 96 << 10, 40, 'text'); // about 2.3 MiB packed
  const text = Object.fromEntries(Object.entries(base).map(([p, b]) => [p, b.toString('base64')]));
  commitFiles(repo, text);
  for (let i = 0; i < 12; i++) {
    const edits: Record<string, string> = {};
    for (const [p, t] of Object.entries(text)) {
      const at = (i * 7919 + p.length * 131) % (t.length - 100);
      text[p] = `${t.slice(0, at)}edit ${i} of ${p}\n${t.slice(at)}`;
      edits[p] = text[p]!;
    }
    commitFiles(repo, edits);
  }
  git(['tag', '-a', '-m', 'annotated', 'v1'], { cwd: repo, date: 1577836800 });
  const mirror = gitDir(repo);
  const r = await updateLevels({ mirrorDir: mirror, levels: [], tips: tipsOf(mirror), scratchDir: tmpDir('levels-scratch'), store, maxPackBytes: 1 << 20 });
  const packs = r.levels[0]!.packs;
  assert.ok(packs.length >= 2, `${packs.length} packs`);
  assert.equal(r.levels[0]!.bytes, packs.reduce((a, p) => a + p.pack.size, 0));
  await assertChainIsMirror(store, r.levels, mirror);
  let deltas = 0;
  for (const p of packs) {
    // Each pack alone in an empty repository: every delta resolves within it.
    const alone = emptyRepo();
    await installPacks(store, [p], alone);
    const out = gitText(['verify-pack', '-v', path.join(alone, '.git/objects/pack', `${p.name}.idx`)], { cwd: alone });
    deltas += out.split('\n').filter((l) => /^[0-9a-f]{40} blob +\d+ \d+ \d+ \d+ [0-9a-f]{40}$/.test(l)).length;
  }
  assert.ok(deltas >= 50, `${deltas} deltified blobs`);
  const check = emptyRepo();
  await installPacks(store, packs, check);
  fs.writeFileSync(path.join(check, '.git/packed-refs'), `${gitText(['for-each-ref', '--format=%(objectname) %(refname)'], { cwd: mirror })}\n`);
  git(['fsck', '--strict', '--no-dangling'], { cwd: check });
});

/** A store that records which artifacts were read back. */
class CountingStore extends LocalArtifactStore {
  reads: string[] = [];
  override async read(digest: string): Promise<Buffer> {
    this.reads.push(digest);
    return super.read(digest);
  }
}

test('the idx of a kept level is read from the store once, not on every sync that adds a level', async () => {
  const repo = newRepo();
  const store = new CountingStore(tmpDir('build-store'));
  commitFiles(repo, manyFiles(30, 4000, 50));
  let r = await sync(repo, store, []);
  const base = r.levels[0]!;
  const baseIdx = new Set(base.packs.map((p) => p.idx.digest));
  for (let i = 0; i < 4; i++) {
    commitFiles(repo, { [`n${i}.txt`]: `${i}\n` });
    r = await sync(repo, store, r.levels);
    assert.deepEqual(r.levels[0], base, 'the base level is kept');
  }
  assert.equal(store.reads.filter((d) => baseIdx.has(d)).length, 1);
  await assertChainIsMirror(store, r.levels, r.mirror);
});

test('a compaction packs the new objects once, in the merged level, not first as a level of their own', async () => {
  const repo = newRepo();
  const store = newStore();
  commitFiles(repo, manyFiles(40, 4000, 80));
  let r = await sync(repo, store, []);
  commitFiles(repo, manyFiles(3, 4000, 81, 'a'));
  r = await sync(repo, store, r.levels);
  assert.equal(r.levels.length, 2);
  commitFiles(repo, manyFiles(3, 4000, 82, 'b'));
  const mirror = gitDir(repo);
  const scratch = tmpDir('levels-scratch');
  const merged = await updateLevels({ mirrorDir: mirror, levels: r.levels, tips: tipsOf(mirror), scratchDir: scratch, store });
  assert.equal(merged.levels.length, 2, 'the two small levels were merged');
  await assertChainIsMirror(store, merged.levels, mirror);
  assert.deepEqual(fs.readdirSync(scratch), ['level0'], 'one pack-objects run');
});
