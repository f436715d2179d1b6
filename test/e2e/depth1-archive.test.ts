/**
 * --depth 1 with the work tree taken from the archive (what big trees do, see
 * depth1FromArchive in src/client/plan.ts; forced here on a small tree without
 * checkout conversions, so the clone asks for the files manifest of the same
 * commit) is indistinguishable from git clone --depth 1, and so is the default
 * (inflating the HEAD packs) on the same upstream.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { RunningServer } from '../../src/serve/server.js';
import { makeMediumRepo, type MediumRepo } from '../support/fixtures.js';
import { compareClones } from '../support/compare.js';
import { git, gitText, gitTry, tmpDir } from '../support/git.js';
import { cliOk, startTestServer } from './harness.js';

let work: string;
let server: RunningServer;
let up: MediumRepo;
let n = 0;

before(async () => {
  work = tmpDir('snapclone-depth1-archive');
  up = makeMediumRepo(work, { commits: 30 });
  server = await startTestServer(work);
  await cliOk(server.url, ['add', up.url, '--name', 'fx/medium']);
});

after(async () => {
  await server?.close();
});

async function depth1(tree: 'archive' | 'packs', extra: string[] = []): Promise<{ s: string; bytes: number }> {
  const g = join(work, `git-${++n}`);
  const s = join(work, `snap-${n}`);
  const gr = gitTry(['clone', '--quiet', '--depth', '1', ...extra, up.url, g], { cwd: work });
  assert.equal(gr.status, 0, `git clone failed: ${gr.stderr.toString()}`);
  const r = await cliOk(server.url, ['clone', 'fx/medium', s, '--depth', '1', '--json', ...extra], { env: { SNAPCLONE_DEPTH1_TREE: tree } });
  assert.deepEqual(compareClones(g, s, { mode: 'editable' }), []);
  git(['fsck', '--full'], { cwd: s });
  assert.equal(gitText(['rev-list', '--count', 'HEAD'], { cwd: s }).trim(), '1');
  return { s, bytes: (JSON.parse(String(r.stdout)) as { bytesDownloaded: number }).bytesDownloaded };
}

test('--depth 1 from the archive equals git clone --depth 1, and fetches the archive on top of the HEAD packs', async () => {
  const packs = await depth1('packs');
  const archive = await depth1('archive');
  assert.ok(archive.bytes > packs.bytes, `archive clone fetched ${archive.bytes} bytes, packs-only ${packs.bytes}`);
});

test('--depth 1 from the archive with --branch (a branch, a tag) follows git', async () => {
  await depth1('archive', ['--branch', up.headBranch]);
  await depth1('archive', ['--branch', 'latest']);
});
