/**
 * Upstream URL normalization: spellings git reads as the same repository are one
 * upstream; anything that can name another repository is kept apart. Checked
 * against real git where it matters (a file:// URL with %XX).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { normalizeUpstreamUrl, upstreamKey, lsRemote } from '../../src/builder/upstream.js';
import { SnapError } from '../../src/util/errors.js';
import { makeUpstream, tempDir } from './helpers.js';

test('the same upstream spelled differently normalizes to one URL', () => {
  const same: Array<[string, string[]]> = [
    ['/srv/x', ['/srv/x', '/srv/x/', '/srv/x//', 'file:///srv/x', 'file:///srv/x/', 'FILE:///srv/x', '/srv//x', '/srv/./x', '/srv/x/.']],
    ['https://github.com/Owner/Repo.git', ['https://github.com/Owner/Repo.git', 'https://github.com/Owner/Repo.git/', 'HTTPS://GitHub.COM/Owner/Repo.git', 'https://github.com:443/Owner/Repo.git']],
    ['ssh://git@host.example/srv/x', ['ssh://git@host.example/srv/x', 'ssh://git@HOST.example:22/srv/x/', 'SSH://git@host.example/srv/x//']],
    ['git@github.com:owner/repo.git', ['git@github.com:owner/repo.git', 'git@GitHub.com:owner/repo.git/']],
    ['/srv/a b', ['file:///srv/a%20b', '/srv/a b/']],
  ];
  for (const [normal, spellings] of same) {
    for (const s of spellings) assert.equal(normalizeUpstreamUrl(s), normal, s);
  }
});

test('what can name another repository is kept apart', () => {
  const distinct = [
    '/srv/x',
    '/srv/X', // paths are case-sensitive
    '/srv/x.git', // git tries x.git only when x is missing: another directory
    '/srv/y/../x', // ".." through a symlink is not "/srv/x"
    'file://otherhost/srv/x', // not a local path
    'https://github.com/owner/repo.git',
    'https://github.com/Owner/Repo.git',
    'https://github.com:8443/owner/repo.git',
    'http://github.com/owner/repo.git',
    'ssh://Git@host/srv/x', // user names are case-sensitive
    'ssh://git@host/srv/x',
    'git@host:srv/x',
  ];
  const normals = distinct.map(normalizeUpstreamUrl);
  assert.equal(new Set(normals).size, distinct.length, normals.join('\n'));
});

test('bad URLs are usage errors, also when only their normal form is bad', () => {
  for (const bad of ['', 'relative/x', 'ext::sh -c x', '-uevil', 'https://u:pw@h/x', 'https://tok@h/x', 'a\nb', 'file:///srv/x%0a', 'x'.repeat(3000)]) {
    assert.throws(
      () => upstreamKey(bad),
      (e: unknown) => e instanceof SnapError && e.code === 'usage',
      JSON.stringify(bad).slice(0, 40),
    );
  }
  assert.equal(upstreamKey('file:///srv/x/'), '/srv/x');
});

test('git reads a file:// URL and its normal form as the same repository', async () => {
  const parent = join(tempDir(), 'with space');
  mkdirSync(parent);
  const up = makeUpstream(parent);
  const url = `file://${up.dir.replace(/ /g, '%20')}/`;
  const normal = normalizeUpstreamUrl(url);
  assert.equal(normal, up.dir);
  const [a, b] = await Promise.all([lsRemote(url), lsRemote(normal)]);
  assert.deepEqual([...a.refs], [...b.refs]);
  assert.equal(a.refs.get('refs/heads/main'), up.head);
});
