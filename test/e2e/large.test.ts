/**
 * Large blobs: a 40 MiB file is inflated by the writer in streaming fashion
 * (above 32 MiB) and spans many archive chunks (4 MiB each); both paths must
 * give git's bytes. A second path with the same blob checks that one object
 * feeds several files.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunningServer } from '../../src/serve/server.js';
import { randomBytes } from '../support/fixtures.js';
import { compareClones } from '../support/compare.js';
import { fileUrl, git, tmpDir } from '../support/git.js';
import { cliOk, startTestServer } from './harness.js';

let work: string;
let server: RunningServer;
let url: string;

before(async () => {
  work = tmpDir('snapclone-large');
  const repo = join(work, 'big');
  mkdirSync(join(repo, 'data'), { recursive: true });
  git(['init', '--quiet', repo], { cwd: work });
  const blob = randomBytes(40 << 20, 7);
  writeFileSync(join(repo, 'data/blob.bin'), blob);
  writeFileSync(join(repo, 'data/copy.bin'), blob);
  writeFileSync(join(repo, 'small.txt'), 'small\n');
  git(['add', '.'], { cwd: repo });
  git(['commit', '--quiet', '-m', 'big'], { cwd: repo, date: 1577836800 });
  url = fileUrl(repo);
  server = await startTestServer(work);
  await cliOk(server.url, ['add', url, '--name', 'big']);
});

after(async () => {
  await server?.close();
});

test('a blob above the streaming threshold comes out as git writes it, in every mode', async () => {
  const g = join(work, 'g');
  git(['clone', '--quiet', url, g], { cwd: work });
  for (const flags of [[], ['--depth', '1'], ['--mode', 'files']]) {
    const s = join(work, `s${flags.join('')}`);
    await cliOk(server.url, ['clone', 'big', s, ...flags]);
    const mode = flags.includes('files') ? 'files' : 'editable';
    const diff = compareClones(g, s, { mode });
    // A depth-1 clone has fewer objects and other refs; compare its work tree only.
    assert.deepEqual(flags.includes('--depth') ? diff.filter((d) => d.startsWith('worktree') || d.startsWith('diff')) : diff, [], flags.join(' '));
  }
});
