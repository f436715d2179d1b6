/**
 * Where a clone goes, through the real CLI against a real server: existing
 * empty directories are filled in place like git does (a plain directory,
 * `.`, a symlink to one, an empty mount point) and keep their identity; full
 * disks, unwritable parents and read-only file systems fail with one line
 * naming the path and the cause (exit 13) and leave nothing behind.
 *
 * Mount points and small file systems are real tmpfs mounts; those tests skip,
 * saying why, where mounting is not permitted. Permission tests run the CLI as
 * an unprivileged user (root bypasses permission checks) and skip when the
 * tests do not run as root.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { RunningServer } from '../../src/serve/server.js';
import { makeMediumRepo, type MediumRepo } from '../support/fixtures.js';
import { compareClones } from '../support/compare.js';
import { git, hermeticEnv, tmpDir } from '../support/git.js';
import { cli, cliOk, startTestServer, type CliResult } from './harness.js';

const BIN = fileURLToPath(new URL('../../../bin/snapclone.js', import.meta.url));

let work: string;
let server: RunningServer;
let medium: MediumRepo;
const mounts: string[] = [];

before(async () => {
  work = tmpDir('snapclone-targets');
  chmodSync(work, 0o755); // the unprivileged-user test reads through it
  medium = makeMediumRepo(work, { commits: 40 });
  server = await startTestServer(work);
  await cliOk(server.url, ['add', medium.url, '--name', 'acme/medium']);
});

after(async () => {
  for (const m of mounts.reverse()) spawnSync('umount', [m]);
  await server?.close();
});

/** Mount a tmpfs at `dir` (made if missing); null, with the reason, where that is not permitted. */
function mountTmpfs(dir: string, options: string): string | null {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  if (r.status !== 0) return `cannot mount a tmpfs here (${(r.stderr.toString().trim() || r.error?.message) ?? 'mount failed'})`;
  mounts.push(dir);
  return null;
}

function mountId(dir: string): number {
  return statSync(dir).dev;
}

function gitClone(dest: string, flags: string[] = []): string {
  git(['clone', '--quiet', ...flags, medium.url, dest], { cwd: work });
  return dest;
}

/** The error output must be one line naming the path and the cause. */
function assertOneLineIo(r: CliResult, path: RegExp, cause: RegExp): void {
  assert.equal(r.code, 13, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.ok(lines.length <= 2, `at most "Cloning into" and the error: ${r.stderr}`);
  const error = lines[lines.length - 1]!;
  assert.match(error, /^snapclone: /);
  assert.match(error, path);
  assert.match(error, cause);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

test('an existing empty directory is filled in place: same inode, owner and mode, and the clone is what git clone makes', async () => {
  const target = join(work, 'existing');
  mkdirSync(target);
  chmodSync(target, 0o750);
  const root = process.getuid?.() === 0; // only root can give the directory another owner
  if (root) chownSync(target, 4242, 4343);
  const before = statSync(target);
  const r = await cliOk(server.url, ['clone', 'acme/medium', target]);
  const after = statSync(target);
  assert.equal(after.ino, before.ino, 'the directory was replaced by another');
  assert.equal(after.mode & 0o7777, 0o750);
  if (root) {
    assert.deepEqual([after.uid, after.gid], [4242, 4343]);
    chownSync(target, 0, 0); // else git refuses to compare it ("dubious ownership")
  }
  assert.equal(r.stderr, `Cloning into '${target}'...\n`);
  const expected = join(work, 'existing-git');
  mkdirSync(expected);
  assert.deepEqual(compareClones(gitClone(expected), target, { mode: 'editable' }), []);
  assert.deepEqual(readdirSync(work).filter((n) => n.includes('snapclone-')), []);
});

test('`cd empty && snapclone clone NAME .` fills the current directory, which stays the same directory', async () => {
  const here = join(work, 'here');
  mkdirSync(here);
  const ino = statSync(here).ino;
  const r = await cliOk(server.url, ['clone', 'acme/medium', '.', '--depth', '1'], { cwd: here });
  assert.equal(r.stderr, "Cloning into '.'...\n");
  assert.equal(statSync(here).ino, ino);
  const expected = join(work, 'here-git');
  mkdirSync(expected);
  git(['clone', '--quiet', '--depth', '1', medium.url, '.'], { cwd: expected });
  assert.deepEqual(compareClones(expected, here, { mode: 'editable' }), []);
});

test('a target that is a symlink to an empty directory is filled through it, as git does', async () => {
  const real = join(work, 'real-dir');
  const link = join(work, 'link-to-dir');
  mkdirSync(real);
  symlinkSync(real, link);
  await cliOk(server.url, ['clone', 'acme/medium', link, '--branch', 'release/1.x']);
  assert.ok(lstatSync(link).isSymbolicLink(), 'the symlink is still a symlink');
  const realG = join(work, 'real-dir-git');
  const linkG = join(work, 'link-to-dir-git');
  mkdirSync(realG);
  symlinkSync(realG, linkG);
  gitClone(linkG, ['--branch', 'release/1.x']);
  assert.deepEqual(compareClones(realG, real, { mode: 'editable' }), []);
});

test('an empty mount point is filled in place and stays mounted', async (t) => {
  const mnt = join(work, 'mnt');
  const why = mountTmpfs(mnt, 'size=64m,mode=0755');
  if (why) return t.skip(why);
  const dev = mountId(mnt);
  assert.notEqual(dev, mountId(work));
  await cliOk(server.url, ['clone', 'acme/medium', mnt]);
  assert.equal(mountId(mnt), dev, 'still the mounted file system');
  assert.deepEqual(compareClones(gitClone(join(work, 'mnt-git')), mnt, { mode: 'editable' }), []);
});

test('a full disk (ENOSPC) fails with one line naming the path, exit 13, and leaves nothing', async (t) => {
  const small = join(work, 'small');
  const why = mountTmpfs(small, 'size=1m');
  if (why) return t.skip(why);
  const target = join(small, 'clone');
  const r = await cli(server.url, ['clone', 'acme/medium', target]);
  assertOneLineIo(r, new RegExp(`cannot write ${target}/`), /no space left on device \(ENOSPC\)/);
  assert.deepEqual(readdirSync(small), [], 'everything the clone wrote is gone');
});

test('a full disk under an existing empty mount point: exit 13, and the mount point is left empty and mounted', async (t) => {
  const small = join(work, 'small-mnt');
  const why = mountTmpfs(small, 'size=1m');
  if (why) return t.skip(why);
  const dev = mountId(small);
  const r = await cli(server.url, ['clone', 'acme/medium', small, '--mode', 'files']);
  assertOneLineIo(r, new RegExp(`cannot write ${small}/`), /no space left on device/);
  assert.deepEqual(readdirSync(small), []);
  assert.equal(mountId(small), dev);
});

test('a read-only file system (EROFS) fails with one line naming the path, exit 13', async (t) => {
  const ro = join(work, 'ro');
  const why = mountTmpfs(ro, 'ro,size=1m');
  if (why) return t.skip(why);
  const r = await cli(server.url, ['clone', 'acme/medium', join(ro, 'clone')]);
  assertOneLineIo(r, new RegExp(`${ro}/clone`), /read-only file system \(EROFS\)/);
  // An existing empty directory on it, too.
  const r2 = await cli(server.url, ['clone', 'acme/medium', ro]);
  assertOneLineIo(r2, new RegExp(`${ro}/\\.snapclone-staging-`), /read-only file system/);
  assert.deepEqual(readdirSync(ro), []);
});

/** Run the CLI as the unprivileged user nobody (65534). */
function cliAsNobody(args: string[], cwd: string): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd, uid: 65534, gid: 65534, env: { ...hermeticEnv(), HOME: '/tmp', SNAPCLONE_SERVER: server.url } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

test("a parent directory the user cannot write (EACCES) fails with one line naming the path, exit 13", async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to run the CLI as another user (root itself bypasses permission checks)');
  const locked = join(work, 'locked');
  mkdirSync(locked);
  chmodSync(locked, 0o555);
  const r = await cliAsNobody(['clone', 'acme/medium', join(locked, 'clone')], work);
  assertOneLineIo(r, new RegExp(`${locked}/clone`), /permission denied \(EACCES\)/);
  assert.deepEqual(readdirSync(locked), []);
  // An existing empty directory the user cannot write into.
  const theirs = join(locked, 'theirs');
  chmodSync(locked, 0o755);
  mkdirSync(theirs, { mode: 0o755 });
  const r2 = await cliAsNobody(['clone', 'acme/medium', theirs], work);
  assertOneLineIo(r2, new RegExp(`${theirs}/`), /permission denied/);
  assert.deepEqual(readdirSync(theirs), []);
});

test('a target below a file (ENOTDIR) fails with one line, exit 13, no stack trace', async () => {
  const file = join(work, 'a-file');
  writeFileSync(file, 'data\n');
  const r = await cli(server.url, ['clone', 'acme/medium', join(file, 'clone')]);
  assertOneLineIo(r, new RegExp(`${file}/clone`), /not a directory \(ENOTDIR\)/);
});

test('a target under /proc fails promptly with one line, exit 13 (Node 20\'s recursive mkdir spins forever there)', { timeout: 60_000 }, async (t) => {
  if (!existsSync('/proc/self')) return t.skip('no /proc here');
  const r = await cli(server.url, ['clone', 'acme/medium', '/proc/nope/deeper/clone']);
  assertOneLineIo(r, /\/proc\/nope/, /ENOENT|no such file/i);
});

test('a successful clone prints "Cloning into" on stderr like git; --quiet prints nothing; --json keeps stdout to the JSON', async () => {
  const plain = await cliOk(server.url, ['clone', 'acme/medium'], { cwd: mkdirIn('default-dir') });
  assert.equal(plain.stderr, "Cloning into 'medium'...\n");
  assert.equal(plain.stdout, '');
  assert.ok(existsSync(join(work, 'default-dir', 'medium', '.git')));
  for (const q of ['--quiet', '-q']) {
    const quiet = await cliOk(server.url, ['clone', 'acme/medium', join(work, `quiet${q}`), q]);
    assert.equal(quiet.stderr, '');
    assert.equal(quiet.stdout, '');
  }
  const json = await cliOk(server.url, ['clone', 'acme/medium', join(work, 'as-json'), '--json']);
  assert.equal(json.stdout.trim().split('\n').length, 1);
  assert.equal(JSON.parse(json.stdout).dir, join(work, 'as-json'));
  assert.equal(json.stderr, `Cloning into '${join(work, 'as-json')}'...\n`);
});

function mkdirIn(name: string): string {
  const d = join(work, name);
  mkdirSync(d);
  return d;
}

test("a name whose default directory would be .git (.git.git, a/.GIT.git) is refused with exit 2 before anything is written; an explicit DIR clones it", async () => {
  for (const name of ['.git.git', 'a/.GIT.git']) {
    await cliOk(server.url, ['add', medium.url, '--name', name]);
    const cwd = mkdirIn(`dotgit-${name.replace(/\//g, '_')}`);
    const r = await cli(server.url, ['clone', name], { cwd });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /would be '\.git'.*DIR/i);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.deepEqual(readdirSync(cwd), [], 'nothing written into the current directory');
    await cliOk(server.url, ['clone', name, 'explicit'], { cwd });
    assert.ok(existsSync(join(cwd, 'explicit', '.git', 'HEAD')));
  }
});
