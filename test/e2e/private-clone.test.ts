/**
 * A private repository end to end: a real smart-HTTP git server with Basic auth
 * (test/support/git-http-auth.ts) as the upstream, the real server mirroring it with its own
 * credential (http.extraHeader through GIT_CONFIG_*), and the real CLI cloning it with the
 * user's credential from a real `git credential` helper. The clone must equal `git clone` of
 * the upstream made with the same user's credential, hold none of it, and a caller without a
 * credential, or with one the upstream refuses, gets exit 10 and nothing on disk.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import type { RunningServer } from '../../src/serve/server.js';
import { compareClones } from '../support/compare.js';
import { git, gitGlobalConfigPath, hermeticEnv, removeTmpDir, tmpDir } from '../support/git.js';
import { basic, startGitHttpServer, type GitHttpServer } from '../support/git-http-auth.js';
import { cli, startTestServer } from './harness.js';

const ADMIN = 'private-e2e-admin';
const SERVER_PW = 'srv-E2e-pw-51';
const ALICE_PW = 'al1ce-E2e-pw-77';
const ALICE = basic('alice', ALICE_PW);

let work: string;
let forge: GitHttpServer;
let server: RunningServer;
let upstreamUrl: string;
let expected: string;
let withHelper: string;
let withoutHelper: string;
const saved: Record<string, string | undefined> = {};

before(async () => {
  work = tmpDir('snapclone-private-e2e');
  const src = join(work, 'src');
  mkdirSync(src);
  git(['init', '-q', '-b', 'main', src], { cwd: work });
  mkdirSync(join(src, 'lib'));
  writeFileSync(join(src, 'README.md'), '# private\n');
  writeFileSync(join(src, 'lib', 'a.js'), 'export const a = 1;\n');
  git(['add', '-A'], { cwd: src, date: 1_700_000_000 });
  git(['commit', '-q', '-m', 'first'], { cwd: src, date: 1_700_000_000 });
  writeFileSync(join(src, 'lib', 'b.js'), 'export const b = 2;\n');
  git(['add', '-A'], { cwd: src, date: 1_700_000_100 });
  git(['commit', '-q', '-m', 'second'], { cwd: src, date: 1_700_000_100 });
  git(['tag', 'v1'], { cwd: src });
  const root = join(work, 'forge');
  git(['clone', '-q', '--bare', src, join(root, 'team', 'secret.git')], { cwd: work });
  forge = await startGitHttpServer(root, { users: { 'snapclone-server': SERVER_PW, alice: ALICE_PW } });
  upstreamUrl = `${forge.url}/team/secret.git`;

  // The server's own credential: git's config through the environment (docs/DEPLOY.md).
  for (const k of ['GIT_CONFIG_COUNT', 'GIT_CONFIG_KEY_0', 'GIT_CONFIG_VALUE_0', 'SNAPCLONE_RATE_LIMIT']) saved[k] = process.env[k];
  process.env.GIT_CONFIG_COUNT = '1';
  process.env.GIT_CONFIG_KEY_0 = 'http.extraHeader';
  process.env.GIT_CONFIG_VALUE_0 = `Authorization: ${basic('snapclone-server', SERVER_PW)}`;
  server = await startTestServer(work, { adminToken: ADMIN });

  const add = await cli(server.url, ['add', upstreamUrl, '--name', 'secret', '--quiet'], { env: { SNAPCLONE_TOKEN: ADMIN } });
  assert.equal(add.code, 0, add.stderr);

  // What git clone gives alice (her credential only for that command: nothing persisted).
  expected = join(work, 'git-clone');
  // Asynchronously: the forge answers from this process, so a synchronous git would wait on itself.
  await new Promise<void>((resolve, reject) =>
    execFile('git', ['-c', `http.extraHeader=Authorization: ${ALICE}`, 'clone', '-q', upstreamUrl, expected], { cwd: work, env: hermeticEnv() }, (err, _o, stderr) =>
      err ? reject(new Error(`git clone: ${stderr}`)) : resolve(),
    ),
  );

  // A real credential helper answering alice's user and password for any `get`.
  const helper = join(work, 'helper.sh');
  writeFileSync(helper, `#!/bin/sh\nif [ "$1" = get ]; then echo username=alice; echo password=${ALICE_PW}; fi\nexit 0\n`);
  chmodSync(helper, 0o755);
  const base = readFileSync(gitGlobalConfigPath(), 'utf8');
  withHelper = join(work, 'gitconfig-helper');
  writeFileSync(withHelper, `${base}[credential]\n\thelper = ${helper}\n`);
  withoutHelper = join(work, 'gitconfig-plain');
  writeFileSync(withoutHelper, base);
});

after(async () => {
  await server?.close();
  await forge?.close();
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  if (work) removeTmpDir(work);
});

function filesUnder(dir: string): Buffer[] {
  const out: Buffer[] = [];
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
    if (e.isFile()) out.push(readFileSync(join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)));
  return out;
}

test('the registration found the upstream private (anonymous info/refs is refused)', async () => {
  const r = await cli(server.url, ['list', '--json'], { env: { SNAPCLONE_TOKEN: ADMIN } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /"visibility":\s*"private"/);
});

test('a full clone with the credential from git credential fill equals git clone, and holds none of it', async () => {
  const dir = join(work, 'full');
  const r = await cli(server.url, ['clone', 'secret', dir, '--quiet'], { env: { GIT_CONFIG_GLOBAL: withHelper } });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(compareClones(expected, dir, { mode: 'editable' }), []);
  const secrets = [ALICE_PW, ALICE.slice(6), SERVER_PW];
  for (const f of filesUnder(dir)) for (const s of secrets) assert.ok(!f.includes(s), `a file of the clone holds ${s.slice(0, 4)}…`);
  assert.equal(git(['config', 'remote.origin.url'], { cwd: dir }).toString().trim(), upstreamUrl);
  for (const s of secrets) assert.ok(!r.stderr.includes(s));
});

test('files mode and --depth 1 with the credential: the work tree equals git clone', async () => {
  const files = join(work, 'files');
  const f = await cli(server.url, ['clone', 'secret', files, '--mode', 'files', '--quiet'], { env: { GIT_CONFIG_GLOBAL: withHelper } });
  assert.equal(f.code, 0, f.stderr);
  assert.deepEqual(compareClones(expected, files, { mode: 'files' }), []);
  const shallow = join(work, 'shallow');
  const s = await cli(server.url, ['clone', 'secret', shallow, '--depth', '1', '--quiet'], { env: { GIT_CONFIG_GLOBAL: withHelper } });
  assert.equal(s.code, 0, s.stderr);
  assert.deepEqual(compareClones(expected, shallow, { mode: 'files' }), []);
  assert.equal(git(['rev-parse', 'HEAD'], { cwd: shallow }).toString(), git(['rev-parse', 'HEAD'], { cwd: expected }).toString());
});

test('without a credential: exit 10, saying what to set, nothing left', async () => {
  const dir = join(work, 'none', 'secret');
  const r = await cli(server.url, ['clone', 'secret', dir, '--quiet'], { env: { GIT_CONFIG_GLOBAL: withoutHelper } });
  assert.equal(r.code, 10, r.stderr);
  assert.match(r.stderr, /SNAPCLONE_UPSTREAM_TOKEN|credential/);
  assert.equal(existsSync(dir), false);
  assert.equal(existsSync(join(work, 'none')), false);
});

test('a credential the upstream refuses: exit 10, nothing left', async () => {
  const dir = join(work, 'refused');
  const r = await cli(server.url, ['clone', 'secret', dir, '--quiet'], { env: { GIT_CONFIG_GLOBAL: withoutHelper, SNAPCLONE_UPSTREAM_TOKEN: 'not-a-valid-token' } });
  assert.equal(r.code, 10, r.stderr);
  assert.equal(existsSync(dir), false);
  assert.ok(!r.stderr.includes('not-a-valid-token'));
});
