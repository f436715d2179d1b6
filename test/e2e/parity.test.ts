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
import { makeEmptyRepo, makeParityRepo, type ParityRepo } from '../support/fixtures.js';
import { compareClones } from '../support/compare.js';
import { git, gitText, tmpDir } from '../support/git.js';
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
/** Clone with git and with snapclone using the same flags; compare. */
async function parity(gitFlags: string[], snapFlags: string[], mode: 'editable' | 'files' = 'editable'): Promise<{ g: string; s: string }> {
  const g = join(work, `git-${++n}`);
  const s = join(work, `snap-${n}`);
  git(['clone', '--quiet', ...gitFlags, up.url, g], { cwd: work });
  await cliOk(server.url, ['clone', 'fx/parity', s, ...snapFlags, ...(mode === 'files' ? ['--mode', 'files'] : [])]);
  if (mode === 'files') git(['-C', g, 'status', '--porcelain'], { cwd: work });
  assert.deepEqual(compareClones(g, s, { mode }), []);
  return { g, s };
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

test('an empty upstream clones like git clone of an empty repository', async () => {
  const empty = makeEmptyRepo(join(work, 'empty-up'), { headBranch: 'trunk' });
  await cliOk(server.url, ['add', empty.url, '--name', 'fx/empty']);
  const g = join(work, 'git-empty');
  const s = join(work, 'snap-empty');
  git(['clone', '--quiet', empty.url, g], { cwd: work });
  await cliOk(server.url, ['clone', 'fx/empty', s]);
  assert.deepEqual(compareClones(g, s, { mode: 'editable' }), []);
  assert.equal(gitText(['symbolic-ref', 'HEAD'], { cwd: s }).trim(), 'refs/heads/trunk');
});

test('a failed clone leaves nothing behind and says why', async () => {
  const target = join(work, 'nothing-here');
  const r = await cli(server.url, ['clone', 'fx/parity', target, '--branch', 'no-such-branch']);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /no branch or tag "no-such-branch"/);
  assert.equal(existsSync(target), false);
  assert.deepEqual(readdirSync(work).filter((f) => f.includes('.snapclone-')), []);
});
