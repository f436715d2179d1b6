/**
 * Re-pointing a repository to another upstream: nothing built from the old
 * upstream is served under the new URL, even when the new upstream's first
 * sync fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { addAndBuild, call, commit, git, makeUpstream, startTestServer, tempDir, waitJob } from './helpers.js';
import { cliOk } from '../e2e/harness.js';
import { compareClones } from '../support/compare.js';
import { git as hermeticGit } from '../support/git.js';
import { randomBytes } from '../support/fixtures.js';
import { parseManifest, type Manifest } from '../../src/clonepack/manifest.js';

async function fullManifest(base: string, repo: string): Promise<Manifest> {
  const r = await call(base, 'GET', `/v1/repos/${repo}/resolve?mode=full`);
  assert.equal(r.status, 200, r.text);
  const res = await fetch(`${base}/v1/artifacts/${r.json.manifest.digest}`);
  assert.equal(res.status, 200);
  return parseManifest(Buffer.from(await res.arrayBuffer()));
}

test('re-pointed to an unrelated upstream: none of the old upstream\'s history levels reach the new one\'s full manifest; a full clone is git clone\'s', async () => {
  const work = tempDir();
  const a = join(work, 'a');
  mkdirSync(a);
  git(a, ['init', '-q', '-b', 'main']);
  // Larger than B's history, so the geometric compaction never merges B's level into A's.
  for (let i = 0; i < 3; i++) commit(a, { [`private-${i}.bin`]: randomBytes(64 << 10, i + 1).toString('base64') }, `private ${i}`);
  const b = makeUpstream(work, 'b');
  const bHead = commit(b.dir, { 'only-b.txt': 'b\n' }, 'b');
  const s = await startTestServer({ adminToken: 'adm1n' });
  try {
    await addAndBuild(s.url, a, 'r', ADMIN);
    const before = await fullManifest(s.url, 'r');
    assert.ok(before.historyPacks.length > 0);
    const patch = await call(s.url, 'PATCH', '/v1/repos/r', { url: b.dir }, ADMIN);
    assert.equal(patch.status, 200, patch.text);
    assert.equal((await waitJob(s.url, patch.json.job.id)).state, 'succeeded');
    const after = await fullManifest(s.url, 'r');
    assert.equal(after.commit, bHead);
    const old = new Set(before.historyPacks.map((p) => p.pack.digest));
    assert.deepEqual(after.historyPacks.filter((p) => old.has(p.pack.digest)), [], 'a history level of the old upstream is in the new one\'s manifest');
    const out = tempDir();
    hermeticGit(['clone', '-q', b.dir, 'g'], { cwd: out });
    await cliOk(s.url, ['clone', 'r', join(out, 's')]);
    assert.deepEqual(compareClones(join(out, 'g'), join(out, 's'), { mode: 'editable', ignoreConfigKeys: ['remote.origin.url'] }), []);
  } finally {
    await s.close();
  }
});

const ADMIN = { authorization: 'Bearer adm1n' };

test('re-pointed to another upstream whose fetch fails: the old upstream\'s builds are not served as the new one\'s', async () => {
  const work = tempDir();
  const a = makeUpstream(work, 'a');
  const b = makeUpstream(work, 'b');
  const bHead = commit(b.dir, { 'only-b.txt': 'b\n' }, 'b');
  // B advertises its refs (ls-remote works), but a fetch cannot send the missing blob.
  const blob = git(b.dir, ['rev-parse', `${bHead}:only-b.txt`]);
  rmSync(join(b.dir, '.git', 'objects', blob.slice(0, 2), blob.slice(2)));
  const s = await startTestServer({ adminToken: 'adm1n' });
  try {
    await addAndBuild(s.url, a.dir, 'r', ADMIN);
    const tag = await call(s.url, 'POST', '/v1/repos/r/sync', { branch: 'v1' }, ADMIN);
    assert.equal((await waitJob(s.url, tag.json.job.id)).state, 'succeeded');
    const before = await call(s.url, 'GET', '/v1/repos/r/resolve');
    assert.equal(before.json.commit, a.head);

    const patch = await call(s.url, 'PATCH', '/v1/repos/r', { url: b.dir }, ADMIN);
    assert.equal(patch.status, 200, patch.text);
    assert.deepEqual((await call(s.url, 'GET', '/v1/repos/r')).json.refs, [], 'no ref record of the old upstream is kept');
    const job = await waitJob(s.url, patch.json.job.id);
    assert.equal(job.state, 'failed', 'the fetch from B fails');

    for (const ref of ['', 'main', 'v1']) {
      const r = await call(s.url, 'GET', `/v1/repos/r/resolve?ref=${ref}`);
      assert.notEqual(r.status, 200, `${ref || 'default'}: answered ${r.text}`);
      assert.ok(r.status === 202 || r.status >= 400, `${ref}: ${r.status}`);
    }
    const head = await call(s.url, 'GET', '/v1/repos/r/resolve');
    assert.ok(['unreachable', 'build-failed'].includes(head.json.code), head.text);
    assert.equal((await call(s.url, 'GET', '/v1/repos/r')).json.defaultBranch, 'main');
  } finally {
    await s.close();
  }
});
