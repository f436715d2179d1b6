/**
 * Managing registrations through the real CLI against the real server: list,
 * set-url (re-point to another upstream, which is then what clones get) and
 * remove (the name is then unknown, its mirror gone, its artifacts kept), with
 * the admin token enforced for the two that change state.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunningServer } from '../../src/serve/server.js';
import { compareClones } from '../support/compare.js';
import { git, gitText, tmpDir } from '../support/git.js';
import { cli, cliOk, startTestServer } from './harness.js';

const TOKEN = 'manage-test-token';
let work: string;
let server: RunningServer;

/** A bare upstream with one commit holding `file` = `content`. */
function upstream(name: string, content: string): string {
  const src = join(work, `${name}-src`);
  git(['init', '--quiet', '-b', 'main', src], { cwd: work });
  writeFileSync(join(src, 'file'), content);
  git(['add', 'file'], { cwd: src });
  git(['commit', '--quiet', '-m', name], { cwd: src });
  const bare = join(work, `${name}.git`);
  git(['clone', '--quiet', '--bare', src, bare], { cwd: work });
  return bare;
}

before(async () => {
  work = tmpDir('snapclone-manage');
  server = await startTestServer(work, { adminToken: TOKEN });
});

after(async () => {
  await server?.close();
});

test('list, set-url and remove through the CLI: what clones see, and the token they need', async () => {
  const admin = { env: { SNAPCLONE_TOKEN: TOKEN } };
  const first = upstream('first', 'from the first upstream\n');
  const second = upstream('second', 'from the second upstream\n');
  await cliOk(server.url, ['add', first, '--name', 'team/tool', '-q'], admin);

  const listed = JSON.parse((await cliOk(server.url, ['list', '--json'])).stdout);
  assert.deepEqual(listed.repos ?? listed, [{ name: 'team/tool', url: first, defaultBranch: 'main', visibility: 'public' }]);
  assert.match((await cliOk(server.url, ['list'])).stdout, /team\/tool/);

  // Without the token the state-changing commands are refused (exit 10) and change nothing.
  assert.equal((await cli(server.url, ['set-url', 'team/tool', second])).code, 10);
  assert.equal((await cli(server.url, ['remove', 'team/tool'])).code, 10);

  // Re-pointed: the next clone is of the second upstream, exactly as git clone makes it.
  await cliOk(server.url, ['set-url', 'team/tool', second], admin);
  const s = join(work, 'after-set-url');
  await cliOk(server.url, ['clone', 'team/tool', s, '-q']);
  const g = join(work, 'git-second');
  git(['clone', '--quiet', second, g], { cwd: work });
  assert.deepEqual(compareClones(g, s, { mode: 'editable' }), []);
  assert.equal(gitText(['config', 'remote.origin.url'], { cwd: s }).trim(), second);
  assert.equal(JSON.parse((await cliOk(server.url, ['list', '--json'])).stdout).repos[0].url, second);

  // Another spelling of the same upstream is the same upstream: no conflict, nothing changes.
  assert.equal((await cli(server.url, ['add', `file://${second}/`, '--name', 'team/tool', '-q'], admin)).code, 0);
  // A different upstream under the taken name: 409, naming who holds it.
  const taken = await cli(server.url, ['add', first, '--name', 'team/tool', '-q'], admin);
  assert.equal(taken.code, 9, taken.stderr);
  assert.ok(taken.stderr.includes(second), taken.stderr);

  // Removed: unknown from then on (exit 3), its mirror gone.
  const mirrors = join(work, 'data', 'mirrors');
  assert.equal(readdirSync(mirrors).length, 1);
  await cliOk(server.url, ['remove', 'team/tool'], admin);
  const gone = await cli(server.url, ['clone', 'team/tool', join(work, 'after-remove')]);
  assert.equal(gone.code, 3, gone.stderr);
  assert.equal(existsSync(join(work, 'after-remove')), false);
  assert.equal((await cli(server.url, ['status', 'team/tool'])).code, 3);
  assert.equal((await cli(server.url, ['remove', 'team/tool'], admin)).code, 3);
  assert.deepEqual(JSON.parse((await cliOk(server.url, ['list', '--json'])).stdout).repos, []);
  assert.deepEqual(readdirSync(mirrors), []);

  // The name is free again, for any upstream.
  await cliOk(server.url, ['add', first, '--name', 'team/tool', '-q'], admin);
  const again = join(work, 'after-re-add');
  await cliOk(server.url, ['clone', 'team/tool', again, '-q']);
  assert.equal(readFileSync(join(again, 'file'), 'utf8'), 'from the first upstream\n');
});
