/**
 * bootstrapMirror on its own, against real git and a real store: a multi-level chain
 * gives a connected mirror whose refs are the snapshot's; refs the levels do not hold
 * are left for the fetch; a missing artifact leaves nothing behind; scratch mirrors of
 * dead processes are removed, a live one's kept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { git, gitText, tmpDir } from '../support/git.js';
import { bootstrapMirror, heldRefs } from '../../src/builder/bootstrap.js';
import { snapshotRefs } from '../../src/builder/mirror.js';
import { updateLevels, type HistoryLevel } from '../../src/builder/levels.js';
import { commitFiles, gitDir, manyFiles, newRepo, newStore } from './helpers.js';
import type { LocalArtifactStore } from '../../src/storage/local/local-store.js';

async function levelsOf(repo: string, store: LocalArtifactStore, levels: HistoryLevel[]): Promise<{ mirror: string; levels: HistoryLevel[] }> {
  const mirror = gitDir(repo);
  const tips = gitText(['for-each-ref', '--format=%(objectname)', 'refs/heads', 'refs/tags'], { cwd: mirror }).split('\n').filter(Boolean);
  const u = await updateLevels({ mirrorDir: mirror, levels, tips, scratchDir: tmpDir('boot-scratch'), store });
  return { mirror, levels: u.levels };
}

test('a two-level chain bootstraps a connected mirror with the snapshot refs; refs no level holds are not written', async () => {
  const repo = newRepo();
  const store = newStore();
  commitFiles(repo, manyFiles(20, 3000, 7));
  git(['tag', '-a', '-m', 'one', 'v1'], { cwd: repo });
  git(['tag', '-a', '-m', 'tag of a tag', 'v1-outer', 'v1'], { cwd: repo });
  const first = await levelsOf(repo, store, []);
  commitFiles(repo, { 'more.txt': 'more\n' });
  const second = await levelsOf(repo, store, first.levels);
  assert.equal(second.levels.length, 2, 'a second level for the push');
  const refs = await snapshotRefs(second.mirror);
  // A ref whose object no level holds (a snapshot from before a re-point, say).
  const stray = { name: 'refs/heads/stray', oid: 'f'.repeat(40) };
  assert.deepEqual(heldRefs([...refs, stray], second.levels), refs);

  const dir = path.join(tmpDir('boot-mirrors'), 'repo.git');
  const r = await bootstrapMirror({ dir, url: repo, levels: second.levels, refs: [...refs, stray], store });
  assert.equal(r.packs, second.levels.flatMap((l) => l.packs).length);
  assert.equal(r.refs, refs.length);
  git(['fsck', '--connectivity-only', '--no-progress'], { cwd: dir });
  assert.deepEqual(await snapshotRefs(dir), refs, 'the refs and their peeled targets are the snapshot\'s');
  assert.equal(gitText(['config', 'remote.origin.url'], { cwd: dir }), repo);
  assert.deepEqual(fs.readdirSync(path.dirname(dir)), ['repo.git']);
});

test('a missing level artifact: bootstrapMirror throws and leaves neither the mirror nor its scratch dir', async () => {
  const repo = newRepo();
  const store = newStore();
  commitFiles(repo, { 'a.txt': 'a\n' });
  const { mirror, levels } = await levelsOf(repo, store, []);
  const p = levels[0]!.packs[0]!;
  assert.ok(await store.quarantine(p.idx.digest, 'test: gone'));
  const parent = tmpDir('boot-mirrors');
  const dir = path.join(parent, 'repo.git');
  await assert.rejects(bootstrapMirror({ dir, url: repo, levels, refs: await snapshotRefs(mirror), store }));
  assert.deepEqual(fs.readdirSync(parent), []);
});

test('no snapshot ref is a level tip: nothing is downloaded, the plain fetch is cheaper', async () => {
  const repo = newRepo();
  const store = newStore();
  commitFiles(repo, { 'a.txt': 'a\n' });
  const { levels } = await levelsOf(repo, store, []);
  const parent = tmpDir('boot-mirrors');
  await assert.rejects(bootstrapMirror({ dir: path.join(parent, 'repo.git'), url: repo, levels, refs: [], store }), /no ref of the latest snapshot/);
  assert.deepEqual(fs.readdirSync(parent), []);
});

test('scratch mirrors of dead bootstraps are removed; one of a live process stays', async () => {
  const repo = newRepo();
  const store = newStore();
  commitFiles(repo, { 'a.txt': 'a\n' });
  const { mirror, levels } = await levelsOf(repo, store, []);
  const parent = tmpDir('boot-mirrors');
  const dead = path.join(parent, 'repo.git.boot-999999999-1');
  const live = path.join(parent, `repo.git.boot-${process.ppid}-1`);
  const other = path.join(parent, 'other.git.boot-999999999-1');
  for (const d of [dead, live, other]) fs.mkdirSync(d);
  await bootstrapMirror({ dir: path.join(parent, 'repo.git'), url: repo, levels, refs: await snapshotRefs(mirror), store });
  assert.deepEqual(fs.readdirSync(parent).sort(), ['other.git.boot-999999999-1', 'repo.git', `repo.git.boot-${process.ppid}-1`].sort());
});
