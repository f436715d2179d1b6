/**
 * Parity with git clone: every clone mode of the parity fixture (exec bits,
 * symlinks of every kind, a gitlink, odd and non-UTF-8 names, a deep tree,
 * large files, .gitattributes conversions, branches and tags) and of an empty
 * upstream is compared with a real `git clone` of the same upstream.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RunningServer } from '../../src/serve/server.js';
import { makeEmptyRepo, makeMissingHeadRepo, makeParityRepo, type ParityRepo } from '../support/fixtures.js';
import { compareClones } from '../support/compare.js';
import { git, gitText, gitTry, tmpDir } from '../support/git.js';
import { cli, cliOk, startTestServer } from './harness.js';

let work: string;
let server: RunningServer;
let up: ParityRepo;

before(async () => {
  work = tmpDir('snapclone-parity');
  up = makeParityRepo(join(work, 'upstream'));
  server = await startTestServer(work);
  await cliOk(server.url, ['add', up.url, '--name', 'fx/parity']);
});

after(async () => {
  await server?.close();
});

let n = 0;

/** git's "warning: ..." lines: snapclone must warn where git does, and only there. */
function warnings(stderr: string | Buffer): string[] {
  return String(stderr)
    .split('\n')
    .filter((l) => l.startsWith('warning: '));
}

/** Clone `url` with git and `name` with snapclone using the same flags; compare the clones and the warnings. */
async function parityOf(
  url: string,
  name: string,
  gitFlags: string[],
  snapFlags: string[],
  mode: 'editable' | 'files' = 'editable',
): Promise<{ g: string; s: string }> {
  const g = join(work, `git-${++n}`);
  const s = join(work, `snap-${n}`);
  const gr = gitTry(['clone', '--quiet', ...gitFlags, url, g], { cwd: work });
  assert.equal(gr.status, 0, `git clone failed: ${gr.stderr.toString()}`);
  const sr = await cliOk(server.url, ['clone', name, s, ...snapFlags, ...(mode === 'files' ? ['--mode', 'files'] : [])]);
  if (mode === 'files') git(['-C', g, 'status', '--porcelain'], { cwd: work });
  assert.deepEqual(compareClones(g, s, { mode }), []);
  assert.deepEqual(warnings(sr.stderr), warnings(gr.stderr), 'snapclone warns as git clone does');
  return { g, s };
}

/** parityOf() for the parity fixture. */
function parity(gitFlags: string[], snapFlags: string[], mode: 'editable' | 'files' = 'editable'): Promise<{ g: string; s: string }> {
  return parityOf(up.url, 'fx/parity', gitFlags, snapFlags, mode);
}

/** The tag refs a clone has. */
function tagsOf(dir: string): string[] {
  return gitText(['for-each-ref', '--format=%(refname:short)', 'refs/tags'], { cwd: dir }).split('\n').filter(Boolean);
}

test('full clone is indistinguishable from git clone, and git works on it afterwards', async () => {
  const { s } = await parity([], []);
  const run = (args: string[]) => gitText(args, { cwd: s });
  assert.equal(run(['status', '--porcelain']), '');
  assert.equal(run(['rev-parse', 'HEAD']).trim(), up.head);
  assert.ok(run(['log', '--oneline']).split('\n').length > 3);
  run(['diff', up.tagNames.annotatedOld, 'HEAD', '--stat']);
  run(['blame', '--', up.paths.crlfFile]);
  run(['checkout', '--quiet', 'dev']);
  assert.equal(run(['rev-parse', 'HEAD']).trim(), up.branches.dev);
  run(['checkout', '--quiet', 'main']);
  run(['fetch', '--quiet']);
  run(['pull', '--quiet', '--ff-only']);
  run(['fsck', '--full', '--strict']);
});

test('--depth 1 is indistinguishable from git clone --depth 1, and unshallows', async () => {
  const { s } = await parity(['--depth', '1'], ['--depth', '1']);
  assert.equal(gitText(['rev-list', '--count', 'HEAD'], { cwd: s }).trim(), '1');
  git(['fetch', '--quiet', '--unshallow'], { cwd: s });
  assert.ok(Number(gitText(['rev-list', '--count', 'HEAD'], { cwd: s }).trim()) > 1);
  assert.equal(existsSync(join(s, '.git/shallow')), false);
  git(['fsck', '--full'], { cwd: s });
});

test('--branch picks a branch, like git clone --branch', async () => {
  await parity(['--branch', 'dev'], ['--branch', 'dev']);
  await parity(['--branch', 'feature/x'], ['--branch', 'feature/x']);
});

test('--branch with a tag gives a detached HEAD, like git clone --branch', async () => {
  await parity(['--branch', up.tagNames.annotatedOld], ['--branch', up.tagNames.annotatedOld]);
  await parity(['--branch', up.tagNames.lightweight], ['--branch', up.tagNames.lightweight]);
});

test('--depth 1 with --branch (branch and tag) follows git', async () => {
  await parity(['--depth', '1', '--branch', 'dev'], ['--depth', '1', '--branch', 'dev']);
  await parity(['--depth', '1', '--branch', up.tagNames.annotatedHead], ['--depth', '1', '--branch', up.tagNames.annotatedHead]);
});

test('--mode files writes the same work tree as git clone, and no .git', async () => {
  const { s } = await parity([], [], 'files');
  assert.equal(existsSync(join(s, '.git')), false);
});

test('an empty upstream clones like git clone of an empty repository (full, --depth 1, files)', async () => {
  const empty = makeEmptyRepo(join(work, 'empty-up'), { headBranch: 'trunk' });
  await cliOk(server.url, ['add', empty.url, '--name', 'fx/empty']);
  const { s } = await parityOf(empty.url, 'fx/empty', [], []);
  assert.equal(gitText(['symbolic-ref', 'HEAD'], { cwd: s }).trim(), 'refs/heads/trunk');
  // --depth implies --single-branch, and with no remote branch git writes no fetch refspec at all.
  const { s: d } = await parityOf(empty.url, 'fx/empty', ['--depth', '1'], ['--depth', '1']);
  assert.equal(gitTry(['config', '--get-all', 'remote.origin.fetch'], { cwd: d }).status, 1);
  await parityOf(empty.url, 'fx/empty', [], [], 'files');
  await refusedLikeGit(empty.url, 'fx/empty', 'trunk');
});

/** `git clone --branch <b>` fails for a branch that does not exist; so must snapclone, leaving nothing. */
async function refusedLikeGit(url: string, name: string, branch: string): Promise<void> {
  const g = join(work, `git-${++n}`);
  const s = join(work, `snap-${n}`);
  const gr = gitTry(['clone', '--quiet', '--branch', branch, url, g], { cwd: work });
  assert.notEqual(gr.status, 0);
  assert.match(gr.stderr.toString(), new RegExp(`Remote branch ${branch} not found`));
  const r = await cli(server.url, ['clone', name, s, '--branch', branch]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`no branch or tag "${branch}"`));
  assert.equal(existsSync(s), false);
}

test('--depth 1 keeps every tag whose target it fetched (the commit, its trees, its blobs, tags of tags), as git does', async () => {
  const { s } = await parity(['--depth', '1'], ['--depth', '1']);
  const tags = tagsOf(s);
  for (const t of up.tagNames.onHeadObjects) assert.ok(tags.includes(t), `${t} follows the depth-1 clone`);
  for (const t of up.tagNames.offHeadObjects) assert.ok(!tags.includes(t), `${t} does not`);
  // Each kept tag's objects are there: git can show the tag and what it points at.
  for (const t of up.tagNames.onHeadObjects) git(['cat-file', '-e', `refs/tags/${t}^{}`], { cwd: s });
  // A tag of a tag as the cloned ref: the whole chain of tag objects comes along.
  await parity(['--depth', '1', '--branch', 'nested-twice'], ['--depth', '1', '--branch', 'nested-twice']);
});

test("an upstream whose HEAD names a missing branch clones as git clone does: unborn HEAD, every origin/* branch, a warning", async () => {
  const missing = makeMissingHeadRepo(join(work, 'missing-head-up'), up.path);
  await cliOk(server.url, ['add', missing.url, '--name', 'fx/missing-head']);
  const { s } = await parityOf(missing.url, 'fx/missing-head', [], []);
  assert.equal(gitText(['symbolic-ref', 'HEAD'], { cwd: s }), `refs/heads/${missing.headBranch}`);
  assert.equal(gitTry(['rev-parse', '-q', '--verify', 'HEAD'], { cwd: s }).status, 1, 'HEAD is unborn');
  assert.equal(existsSync(join(s, '.git/index')), false);
  assert.deepEqual(readdirSync(s), ['.git']);
  // The history is all there: checking out a branch works.
  git(['checkout', '--quiet', 'dev'], { cwd: s });
  assert.equal(gitText(['rev-parse', 'HEAD'], { cwd: s }), up.branches.dev);
  // --depth 1 fetches nothing (no remote head to follow), as git does.
  await parityOf(missing.url, 'fx/missing-head', ['--depth', '1'], ['--depth', '1']);
  // Files mode: an empty directory and the same warning (there is nothing to check out).
  const { s: f } = await parityOf(missing.url, 'fx/missing-head', [], [], 'files');
  assert.deepEqual(readdirSync(f), []);
  // An explicit branch of such an upstream is an ordinary clone.
  await parityOf(missing.url, 'fx/missing-head', ['--branch', 'dev'], ['--branch', 'dev']);
  await refusedLikeGit(missing.url, 'fx/missing-head', missing.headBranch);
});

test('a failed clone leaves nothing behind and says why', async () => {
  const target = join(work, 'nothing-here');
  const r = await cli(server.url, ['clone', 'fx/parity', target, '--branch', 'no-such-branch']);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /no branch or tag "no-such-branch"/);
  assert.equal(existsSync(target), false);
  assert.deepEqual(readdirSync(work).filter((f) => f.includes('.snapclone-')), []);
});
