/**
 * A repository's life through the CLI: real history (the medium fixture), a
 * push followed by sync, status, --json output, exit codes for the failures a
 * user meets, and a corrupted artifact that must fail the clone cleanly.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunningServer } from '../../src/serve/server.js';
import { makeMediumRepo, type MediumRepo } from '../support/fixtures.js';
import { compareClones } from '../support/compare.js';
import { git, gitText, tmpDir } from '../support/git.js';
import { cli, cliOk, startTestServer } from './harness.js';

let work: string;
let server: RunningServer;
let medium: MediumRepo;

before(async () => {
  work = tmpDir('snapclone-lifecycle');
  medium = makeMediumRepo(work, { commits: 300 });
  // No hot-artifact cache: a test below corrupts artifacts on disk and must see it served.
  server = await startTestServer(work, { cacheBytes: 0 });
  await cliOk(server.url, ['add', medium.url, '--name', 'acme/medium']);
});

after(async () => {
  await server?.close();
});

test('a repository with real history clones like git clone in every mode', async () => {
  for (const [gitFlags, snapFlags, mode] of [
    [[], [], 'editable'],
    [['--depth', '1'], ['--depth', '1'], 'editable'],
    [['--branch', 'release/1.x'], ['--branch', 'release/1.x'], 'editable'],
    [[], ['--mode', 'files'], 'files'],
  ] as const) {
    const tag = snapFlags.join('') || 'full';
    const g = join(work, `g-${tag}`);
    const s = join(work, `s-${tag}`);
    git(['clone', '--quiet', ...gitFlags, medium.url, g], { cwd: work });
    await cliOk(server.url, ['clone', 'acme/medium', s, ...snapFlags]);
    assert.deepEqual(compareClones(g, s, { mode }), [], `mode ${tag}`);
  }
});

test('sync picks up a push, and clones then get the new commit', async () => {
  // Push a commit to main through a scratch clone.
  const scratch = join(work, 'pusher');
  git(['clone', '--quiet', medium.url, scratch], { cwd: work });
  writeFileSync(join(scratch, 'NEW.md'), 'pushed after the first build\n');
  git(['add', 'NEW.md'], { cwd: scratch });
  git(['commit', '--quiet', '-m', 'a new commit'], { cwd: scratch });
  git(['push', '--quiet', 'origin', 'HEAD:main'], { cwd: scratch });
  const head = gitText(['rev-parse', 'HEAD'], { cwd: scratch }).trim();

  const r = await cliOk(server.url, ['sync', 'acme/medium', '--json']);
  assert.equal(JSON.parse(r.stdout).job.commit, head);
  const status = JSON.parse((await cliOk(server.url, ['status', 'acme/medium', '--json'])).stdout);
  const main = status.refs.find((x: { ref: string }) => x.ref === 'refs/heads/main');
  assert.equal(main.commit, head);
  assert.ok(main.sizes.editable > main.sizes.shallow && main.sizes.shallow > 0 && main.sizes.files > 0);

  const s = join(work, 's-after-push');
  const g = join(work, 'g-after-push');
  const out = await cliOk(server.url, ['clone', 'acme/medium', s, '--json']);
  const result = JSON.parse(out.stdout);
  assert.equal(result.commit, head);
  assert.equal(result.ref, 'refs/heads/main');
  assert.ok(result.files > 100 && result.bytesDownloaded > 0 && result.timings.total > 0);
  git(['clone', '--quiet', medium.url, g], { cwd: work });
  assert.deepEqual(compareClones(g, s, { mode: 'editable' }), []);
});

test('human status lists the built ref and the builds', async () => {
  const r = await cliOk(server.url, ['status', 'acme/medium']);
  assert.match(r.stdout, /refs\/heads\/main {2}[0-9a-f]{12}/);
  assert.match(r.stdout, /succeeded/);
});

test('adding the same upstream again changes nothing', async () => {
  const r = await cliOk(server.url, ['add', medium.url, '--name', 'acme/medium', '--json']);
  assert.equal(JSON.parse(r.stdout).created, false);
});

test('failures exit non-zero with one line on stderr and leave nothing behind', async () => {
  const cases: [string[], number, RegExp][] = [
    [['clone', 'acme/nope', join(work, 'x1')], 3, /unknown repository acme\/nope/],
    [['clone', 'acme/medium', join(work, 'x2'), '--depth', '2'], 2, /--depth supports only 1/],
    [['clone', 'acme/medium', join(work, 'x3'), '--mode', 'bare'], 2, /--mode must be editable or files/],
    [['clone'], 2, /clone takes NAME/],
    [['frobnicate'], 2, /unknown command/],
    [['add', join(work, 'does-not-exist.git'), '--name', 'acme/ghost'], 4, /ls-remote failed|not appear to be a git repository/],
    [['add', 'https://user:hunter2@example.invalid/x.git'], 2, /embeds credentials/],
  ];
  for (const [args, code, message] of cases) {
    const r = await cli(server.url, args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.doesNotMatch(r.stderr + r.stdout, /hunter2/);
  }
  const repos = await (await fetch(`${server.url}/v1/repos`)).json();
  assert.deepEqual(repos.repos.map((x: { name: string }) => x.name), ['acme/medium'], 'failed adds registered nothing');
  for (const d of ['x1', 'x2', 'x3']) assert.equal(existsSync(join(work, d)), false);

  const down = await cli('http://127.0.0.1:1', ['clone', 'acme/medium', join(work, 'x4')]);
  assert.equal(down.code, 4);
  assert.match(down.stderr, /cannot reach snapclone server/);

  const occupied = join(work, 'occupied');
  git(['init', '--quiet', occupied], { cwd: work });
  const busy = await cli(server.url, ['clone', 'acme/medium', occupied]);
  assert.equal(busy.code, 8);
  assert.ok(existsSync(join(occupied, '.git/HEAD')), 'the existing directory is untouched');
});

test('a corrupted artifact fails the clone with an integrity error and leaves nothing', async () => {
  const status = JSON.parse((await cliOk(server.url, ['status', 'acme/medium', '--json'])).stdout);
  const digest: string = status.refs.find((x: { ref: string }) => x.ref === 'refs/heads/main').manifest.digest;
  const manifest = JSON.parse(readFileSync(join(work, 'data/artifacts', digest.slice(0, 2), digest), 'utf8'));
  // Each mode reads different artifacts: corrupt one of each kind in turn.
  const cases: [string, string[]][] = [
    [manifest.archive.chunks[0].digest, []],
    [manifest.historyPacks[0].pack.digest, []],
    [manifest.headPacks[0].pack.digest, ['--depth', '1']],
    [manifest.archive.chunks[0].digest, ['--mode', 'files']],
  ];
  const reported = new Set<string>();
  for (const [victim, flags] of cases) {
    const file = join(work, 'data/artifacts', victim.slice(0, 2), victim);
    // Read once first: the server then trusts its copy, so only the client's own check can catch the
    // damage (the server's first-read check is tested in test/serve/integrity.test.ts).
    await (await fetch(`${server.url}/v1/artifacts/${victim}`)).arrayBuffer();
    const good = readFileSync(file);
    const bad = Buffer.from(good);
    bad[Math.floor(bad.length / 2)] ^= 0xff;
    chmodSync(file, 0o644);
    writeFileSync(file, bad);
    const target = join(work, 'corrupt');
    const r = await cli(server.url, ['clone', 'acme/medium', target, ...flags]);
    assert.equal(r.code, 6, `${flags.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /does not match its SHA-256/);
    assert.equal(existsSync(target), false);
    assert.deepEqual(readdirSync(work).filter((f) => f.includes('.snapclone-')), []);
    // The client told the server, which re-read its copy and quarantined it (a second report of
    // one artifact within a minute is not re-checked: the server bounds what reports make it hash).
    if (reported.has(victim)) {
      writeFileSync(file, good);
      chmodSync(file, 0o444);
      continue;
    }
    reported.add(victim);
    await until(async () => (await (await fetch(`${server.url}/healthz`)).json()).quarantined === 1, 'the report quarantines the damaged copy');
    assert.equal((await fetch(`${server.url}/v1/artifacts/${victim}`)).status, 404);
    // An operator's restore (the good bytes back under the digest) ends the quarantine.
    writeFileSync(file, good, { mode: 0o444 });
    await until(async () => (await fetch(`${server.url}/v1/artifacts/${victim}`)).status === 200, 'the restored copy serves again');
    assert.equal((await (await fetch(`${server.url}/healthz`)).json()).quarantined, 0);
  }
});

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting until ${what}`);
}

test('a build failure keeps the previous build serving and shows in status', async () => {
  const moved = `${medium.path}.away`;
  rmSync(moved, { recursive: true, force: true });
  renameSync(medium.path, moved);
  try {
    const r = await cli(server.url, ['sync', 'acme/medium']);
    assert.notEqual(r.code, 0);
    const status = await cliOk(server.url, ['status', 'acme/medium']);
    assert.match(status.stdout, /failed/);
    await cliOk(server.url, ['clone', 'acme/medium', join(work, 'still-serving'), '--depth', '1']);
  } finally {
    renameSync(moved, medium.path);
  }
});

test('names that would become dot-paths or .git are usage errors (exit 2), in the CLI and on the server', async () => {
  const cwd = join(work, 'names-cwd');
  mkdirSync(cwd);
  for (const args of [
    ['add', medium.url, '--name', 'foo/.git'],
    ['add', medium.url, '--name', '...'],
    ['add', medium.url, '--name', 'acme/.GIT'],
    ['add', medium.url, '--name', ''],
    ['clone', 'foo/.git'],
    ['clone', 'acme/..'],
    ['clone', '...'],
    ['sync', 'a//b'],
  ]) {
    const r = await cli(server.url, args, { cwd });
    assert.equal(r.code, 2, `${JSON.stringify(args)}: ${r.stderr}`);
    assert.match(r.stderr, /^snapclone: invalid repository name .*\n$/);
  }
  assert.deepEqual(readdirSync(cwd), [], 'nothing written, no ./.git');
  // The server applies the same rules (another client could send anything).
  for (const name of ['foo/.git', '...', 'a/./b']) {
    const res = await fetch(`${server.url}/v1/repos`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: medium.url, name }) });
    assert.equal(res.status, 400, name);
    assert.equal(((await res.json()) as { code: string }).code, 'usage', name);
  }
  const repos = (await (await fetch(`${server.url}/v1/repos`)).json()) as { repos: { name: string }[] };
  assert.ok(!repos.repos.some((r) => r.name.includes('.git') || r.name.includes('...')));
});

test('the default clone directory is derived as git derives it: tools/widget.git clones into ./widget', async () => {
  await cliOk(server.url, ['add', medium.url, '--name', 'tools/widget.git']);
  const cwd = join(work, 'default-dir-cwd');
  mkdirSync(cwd);
  const r = await cliOk(server.url, ['clone', 'tools/widget.git'], { cwd });
  assert.equal(r.stderr, "Cloning into 'widget'...\n");
  assert.deepEqual(readdirSync(cwd), ['widget']);
  assert.ok(existsSync(join(cwd, 'widget', '.git', 'HEAD')));
});

test('help: an unknown topic is a usage error; --help lists every command and serve flag', async () => {
  const r = await cli(server.url, ['help', 'nosuch']);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^snapclone: no help for 'nosuch'.*\n$/);
  const help = await cliOk(server.url, ['--help']);
  for (const word of ['--build-concurrency', 'snapclone list', 'snapclone remove', 'snapclone set-url', '--quiet']) assert.ok(help.stdout.includes(word), word);
  for (const cmd of ['serve', 'add', 'sync', 'status', 'list', 'remove', 'set-url', 'clone']) {
    const h = await cliOk(server.url, ['help', cmd]);
    assert.match(h.stdout, new RegExp(`^Usage: snapclone ${cmd}\\b`));
    assert.equal((await cliOk(server.url, [cmd, '--help'])).stdout, h.stdout);
  }
  const readme = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
  for (const cmd of ['list', 'remove NAME', 'set-url NAME URL', '--quiet', '--build-concurrency']) assert.ok(readme.includes(cmd), `README mentions ${cmd}`);
});

test('list shows the registered repositories', async () => {
  const json = JSON.parse((await cliOk(server.url, ['list', '--json'])).stdout) as { repos: { name: string; url: string }[] };
  const mine = json.repos.find((r) => r.name === 'acme/medium');
  assert.equal(mine?.url, medium.url);
  const human = await cliOk(server.url, ['list']);
  assert.match(human.stdout, /^acme\/medium +\S+/m);
  assert.equal((await cli(server.url, ['list', 'extra'])).code, 2);
});

test('an artifact missing on the server: exit 12 naming it; a truncated one: exit 6, before the body is read', async () => {
  const status = JSON.parse((await cliOk(server.url, ['status', 'acme/medium', '--json'])).stdout);
  const digest: string = status.refs.find((x: { ref: string }) => x.ref === 'refs/heads/main').manifest.digest;
  const manifest = JSON.parse(readFileSync(join(work, 'data/artifacts', digest.slice(0, 2), digest), 'utf8'));
  const victim: string = manifest.archive.chunks[0].digest;
  const file = join(work, 'data/artifacts', victim.slice(0, 2), victim);
  const good = readFileSync(file);
  const target = join(work, 'damaged');
  try {
    renameSync(file, `${file}.away`);
    const missing = await cli(server.url, ['clone', 'acme/medium', target, '--mode', 'files']);
    assert.equal(missing.code, 12, missing.stderr);
    assert.match(missing.stderr, new RegExp(`snapclone: the server is missing artifact ${victim.slice(0, 12)} `));
    assert.equal(existsSync(target), false);
    renameSync(`${file}.away`, file);

    chmodSync(file, 0o644);
    writeFileSync(file, good.subarray(0, good.length - 100));
    const truncated = await cli(server.url, ['clone', 'acme/medium', target, '--mode', 'files']);
    assert.equal(truncated.code, 6, truncated.stderr);
    assert.match(truncated.stderr, new RegExp(`the server's copy of artifact ${victim.slice(0, 12)} is truncated: ${good.length - 100} of ${good.length} bytes`));
    assert.equal(existsSync(target), false);
  } finally {
    if (existsSync(`${file}.away`)) renameSync(`${file}.away`, file);
    writeFileSync(file, good);
    chmodSync(file, 0o444);
  }
  await cliOk(server.url, ['clone', 'acme/medium', target, '--mode', 'files']);
});
