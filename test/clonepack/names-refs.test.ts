import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { assertRepoName, defaultCloneDir, isValidRepoName, nameFromUrl } from '../../src/clonepack/names.js';
import { isValidRefName, isValidShortRef } from '../../src/clonepack/refs.js';
import { assertSafePath, parentDirs, pathProblem } from '../../src/clonepack/paths.js';
import { SnapError } from '../../src/util/errors.js';

test('valid repository names', () => {
  for (const n of ['a', 'repo', 'expressjs/express', 'a.b_c-D9', 'x/y/z', 'a.git', '_', 'x'.repeat(200), 'a/b.c/d-e', '.hidden', 'a/..git', 'a/.gitx', 'x/.git.d', '-']) {
    assert.equal(isValidRepoName(n), true, n);
    assert.doesNotThrow(() => assertRepoName(n));
  }
});

test('invalid repository names', () => {
  const bad = ['', '.', '..', '../x', 'a/..', 'a/./b', 'a//b', '/a', 'a/', '/', 'a b', 'a\\b', 'a:b', 'é', 'a\0', 'a\nb', 'a%2fb', 'x'.repeat(201), 'a?b', 'a#b', '~x'];
  // Names become paths: no dot-names and no .git directory, in any segment and any case.
  bad.push('...', '....', 'a/...', '.git', 'foo/.git', 'foo/.GIT', '.Git/x', 'a/.git/b');
  for (const n of bad) {
    assert.equal(isValidRepoName(n), false, JSON.stringify(n));
    // A bad name is a usage error (exit 2), on the server as in the CLI.
    assert.throws(() => assertRepoName(n), (e: unknown) => e instanceof SnapError && e.code === 'usage' && e.exitCode === 2, JSON.stringify(n));
  }
  assert.equal(isValidRepoName(undefined as unknown as string), false);
  assert.equal(isValidRepoName(5 as unknown as string), false);
});

test('nameFromUrl gives the directory name git clone would use', () => {
  const cases: [string, string][] = [
    ['https://github.com/expressjs/express.git', 'express'],
    ['https://github.com/expressjs/express', 'express'],
    ['https://github.com/expressjs/express/', 'express'],
    ['git@github.com:owner/repo.git', 'repo'],
    ['git@host:repo.git', 'repo'],
    ['ssh://git@host:22/srv/proj.git/', 'proj'],
    ['/srv/git/proj', 'proj'],
    ['file:///srv/git/proj.git', 'proj'],
    ['https://host/weird name!.git', 'weird-name-'],
    ['', 'repo'],
    // git drops a trailing /.git: the repository is the directory that holds it.
    ['/srv/git/proj/.git', 'proj'],
    ['/srv/git/proj/.git/', 'proj'],
    ['file:///srv/proj/.git', 'proj'],
    // Never a dot-name or .git.
    ['https://host/...', 'repo'],
    ['https://host/a/..git', 'repo'],
    ['https://host/.git', 'host'],
  ];
  for (const [url, name] of cases) {
    assert.equal(nameFromUrl(url), name, url);
    assert.equal(isValidRepoName(nameFromUrl(url)), true, url);
  }
});

test('the default clone directory is derived from the name as git derives it', () => {
  const cases: [string, string][] = [
    ['express', 'express'],
    ['expressjs/express', 'express'],
    ['tools/foo.git', 'foo'],
    ['foo.git', 'foo'],
    ['a/..git', '..git'], // stripping .git would leave a dot-name: keep the segment
    ['a/.hidden', '.hidden'],
    ['x/y.git.git', 'y.git'],
  ];
  for (const [name, dir] of cases) {
    assert.equal(isValidRepoName(name), true, name);
    assert.equal(defaultCloneDir(name), dir, name);
    assert.doesNotMatch(defaultCloneDir(name), /^\.+$/);
  }
});

test("a name whose default directory would be .git (any case) needs an explicit DIR: git's own directory is never written", () => {
  for (const name of ['.git.git', 'a/.git.git', '.GIT.git', 'x/.Git.git']) {
    assert.equal(isValidRepoName(name), true, name); // odd but harmless as a name
    assert.throws(
      () => defaultCloneDir(name),
      (err: unknown) => err instanceof SnapError && err.code === 'usage' && /would be '\.git'/i.test(err.message) && /DIR/.test(err.message),
      name,
    );
  }
});

test('valid ref names', () => {
  for (const r of ['refs/heads/main', 'refs/tags/v1.0.0', 'refs/heads/feature/x-y_z', 'refs/heads/a@b', 'refs/heads/a.b', 'refs/tags/ü', 'refs/heads/@x']) {
    assert.equal(isValidRefName(r), true, r);
  }
  assert.equal(isValidShortRef('main'), true);
  assert.equal(isValidShortRef('release/1.x'), true);
});

const BAD_REFS = [
  '',
  'refs/heads/../x',
  'refs/heads/a..b',
  'refs/heads/a b',
  'refs/heads/a\tb',
  'refs/heads/a\nb',
  'refs/heads/a\x7f',
  'refs/heads/a\x01',
  'refs/heads/a~1',
  'refs/heads/a^',
  'refs/heads/a:b',
  'refs/heads/a?',
  'refs/heads/a*',
  'refs/heads/a[b',
  'refs/heads/a\\b',
  'refs/heads/x.lock',
  'refs/heads/x.lock/y',
  'refs/heads/.hidden',
  'refs/heads/a/.b',
  'refs/heads/x.',
  '/refs/heads/x',
  'refs/heads/x/',
  'refs/heads//x',
  'refs/heads/a@{1}',
  '@',
  'refs/heads/' + 'x'.repeat(1100),
];

test('invalid ref names', () => {
  for (const r of BAD_REFS) assert.equal(isValidRefName(r), false, JSON.stringify(r));
  assert.equal(isValidShortRef('../x'), false);
  assert.equal(isValidShortRef(''), false);
  assert.equal(isValidShortRef('a b'), false);
});

test('every ref name we accept, git check-ref-format accepts too', () => {
  const env = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' };
  const names = [
    'refs/heads/main',
    'refs/tags/v1.0.0',
    'refs/heads/feature/x-y_z',
    'refs/heads/a@b',
    'refs/heads/a.b',
    'refs/heads/@x',
    'refs/heads/-x',
    'refs/heads/x-',
    'refs/heads/a.b.c',
    'refs/heads/a/b/c/d',
    'refs/heads/\u00fc\u00e9',
    'refs/heads/a{b}',
    'refs/heads/a@',
    'refs/heads/x.lck',
    ...BAD_REFS.filter((r) => !r.includes('\0') && !r.includes('\n')),
  ];
  for (const r of names) {
    const ours = isValidRefName(r);
    const git = spawnSync('git', ['check-ref-format', r], { env }).status === 0;
    if (ours) assert.equal(git, true, `we accept ${JSON.stringify(r)}, git does not`);
  }
});

test('pathProblem and parentDirs', () => {
  assert.equal(pathProblem(Buffer.from('a/b/c')), null);
  assert.equal(pathProblem(Buffer.from([0xff, 0x2f, 0xfe])), null);
  assert.match(pathProblem(Buffer.from('a/../b'))!, /'\.\.'/);
  assert.match(pathProblem(Buffer.from('.git/hooks/x'))!, /\.git/);
  assert.throws(() => assertSafePath(Buffer.from('/etc/passwd')), (e: unknown) => e instanceof SnapError && e.code === 'invalid');
  assert.doesNotThrow(() => assertSafePath(Buffer.from('etc/passwd')));
  assert.deepEqual(parentDirs(Buffer.from('a/b/c')), ['a', 'a/b']);
  assert.deepEqual(parentDirs(Buffer.from('a')), []);
  assert.deepEqual(parentDirs(Buffer.from([0xff, 0x2f, 0x41])), ['\xff']);
});
