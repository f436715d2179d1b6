/**
 * Disk full during a build: the server's data dir on a small tmpfs. A push whose blob fits
 * the mirror but not the build fails the sync with a clear `io` error naming the full disk,
 * publishes nothing (the records name the old commit, every stored artifact is whole under
 * its digest, no scratch is left), the previous build keeps serving (a clone equals
 * `git clone` of the old commit), and once space is freed the next sync succeeds.
 * Needs root (mount); skipped with the reason otherwise.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addAndBuild, call, commit, makeUpstream, startTestServer, tempDir, waitJob } from './helpers.js';
import { cliOk } from '../e2e/harness.js';
import { compareClones } from '../support/compare.js';
import { git as hermeticGit } from '../support/git.js';
import { randomBytes } from '../support/fixtures.js';

let work: string;
let dataDir: string;
const mounts: string[] = [];
let skip: string | null = null;

/** A fresh data dir on a tmpfs of `size` (e.g. '24m'); sets `skip` when it cannot be mounted. */
function tmpfsDataDir(name: string, size: string): string {
  const dir = join(work, name);
  mkdirSync(dir);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) skip = `cannot mount a tmpfs (needs root): ${(r.stderr || r.error?.message || '').trim()}`;
  else mounts.push(dir);
  return dir;
}

before(() => {
  work = tempDir('snapclone-diskfull-');
  dataDir = tmpfsDataDir('data', '24m');
});

after(() => {
  for (const m of mounts) spawnSync('umount', ['-l', m]);
});

function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Every file under the store's digest names, excluding its tmp and quarantine dirs. */
function storedArtifacts(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (d === root && (e.name === 'tmp' || e.name === 'quarantine')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(root);
  return out;
}

function assertWholeArtifacts(root: string): number {
  const files = storedArtifacts(root);
  for (const f of files) {
    const name = f.slice(f.lastIndexOf('/') + 1);
    assert.match(name, /^[0-9a-f]{64}$/, `${f} is not named by a digest`);
    assert.equal(createHash('sha256').update(readFileSync(f)).digest('hex'), name, `${f}: a partial or wrong artifact under its final name`);
  }
  return files.length;
}

test('disk full during a build: io error naming it, nothing published, old build serves, a sync after freeing space succeeds', { timeout: 180_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const up = makeUpstream(work, 'up');
  const s = await startTestServer({ dataDir });
  try {
    await addAndBuild(s.url, up.dir, 'r');
    const oldHead = up.head;
    const reference = join(work, 'ref-old');
    hermeticGit(['clone', '-q', up.dir, reference], { cwd: work });
    const artifactsBefore = assertWholeArtifacts(join(dataDir, 'artifacts'));

    // Fits the mirror's fetched pack, but not that and the build's blob pack, archive and history pack.
    const free = freeBytes(dataDir);
    const blob = Math.floor(free * 0.6);
    writeFileSync(join(up.dir, 'big.bin'), randomBytes(blob, 7));
    const newHead = commit(up.dir, {}, 'a large incompressible blob');
    const sync = await call(s.url, 'POST', '/v1/repos/r/sync', {});
    assert.equal(sync.status, 202, sync.text);
    const job = await waitJob(s.url, sync.json.job.id, 120_000);
    t.diagnostic(`free before ${free} bytes, blob ${blob} bytes; job: ${job.state} ${job.errorCode}: ${job.error}`);
    assert.equal(job.state, 'failed');
    assert.equal(job.errorCode, 'io', job.error);
    assert.match(job.error, /no space left on device/i);
    assert.ok(!/\n/.test(job.error), 'one line');

    // Nothing half-published: every mode's record still names the old commit.
    const status = await call(s.url, 'GET', '/v1/repos/r');
    const main = status.json.refs.find((x: { ref: string }) => x.ref === 'refs/heads/main');
    assert.equal(main.commit, oldHead);
    for (const [mode, rec] of Object.entries(main.modes)) assert.equal((rec as { commit: string } | null)?.commit, oldHead, `${mode} record`);
    assert.equal(status.json.jobs[0].errorCode, 'io', 'status shows the failure');
    // Every artifact under its final name is whole; the sync's scratch and the store's tmp files are gone.
    const artifactsAfter = assertWholeArtifacts(join(dataDir, 'artifacts'));
    const scratch = existsSync(join(dataDir, 'tmp')) ? readdirSync(join(dataDir, 'tmp')) : [];
    assert.deepEqual(scratch, [], 'scratch left in the data dir');
    assert.deepEqual(readdirSync(join(dataDir, 'artifacts', 'tmp')), [], 'tmp files left in the store');
    const packDir = join(dataDir, 'mirrors', 'r.git', 'objects', 'pack');
    assert.deepEqual(readdirSync(packDir).filter((f) => f.startsWith('tmp_')), [], 'git tmp packs left in the mirror');
    t.diagnostic(`artifacts before ${artifactsBefore}, after the failed build ${artifactsAfter}; free after ${freeBytes(dataDir)} bytes`);

    // The previous build keeps serving.
    const out = join(work, 'out');
    mkdirSync(out);
    await cliOk(s.url, ['clone', 'r', join(out, 'old')]);
    assert.deepEqual(compareClones(reference, join(out, 'old'), { mode: 'editable', ignoreConfigKeys: ['remote.origin.url'] }), []);

    // Space freed: the next sync builds the new commit.
    const grown = spawnSync('mount', ['-o', 'remount,size=160m', dataDir], { encoding: 'utf8' });
    assert.equal(grown.status, 0, grown.stderr);
    const again = await call(s.url, 'POST', '/v1/repos/r/sync', {});
    const done = await waitJob(s.url, again.json.job.id, 120_000);
    assert.equal(done.state, 'succeeded', done.error);
    hermeticGit(['clone', '-q', up.dir, join(work, 'ref-new')], { cwd: work });
    await cliOk(s.url, ['clone', 'r', join(out, 'new')]);
    assert.equal(statSync(join(out, 'new', 'big.bin')).size, blob);
    assert.deepEqual(compareClones(join(work, 'ref-new'), join(out, 'new'), { mode: 'editable', ignoreConfigKeys: ['remote.origin.url'] }), []);
    assert.equal((await call(s.url, 'GET', '/v1/repos/r')).json.refs.find((x: { ref: string }) => x.ref === 'refs/heads/main').commit, newHead);
    assertWholeArtifacts(join(dataDir, 'artifacts'));
  } finally {
    await s.close();
  }
});

test('disk full during the fetch: io error naming it, no temporary pack left in the mirror, old build serves', { timeout: 180_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const dir = tmpfsDataDir('data-fetch', '24m');
  if (skip) return t.skip(skip);
  const up = makeUpstream(work, 'up-fetch');
  const s = await startTestServer({ dataDir: dir });
  try {
    await addAndBuild(s.url, up.dir, 'r');
    const reference = join(work, 'ref-fetch-old');
    hermeticGit(['clone', '-q', up.dir, reference], { cwd: work });
    const packDir = join(dir, 'mirrors', 'r.git', 'objects', 'pack');
    const packsBefore = readdirSync(packDir).sort();
    const free = freeBytes(dir);
    writeFileSync(join(up.dir, 'huge.bin'), randomBytes(Math.floor(free * 1.3), 8));
    commit(up.dir, {}, 'larger than the disk');
    const sync = await call(s.url, 'POST', '/v1/repos/r/sync', {});
    const job = await waitJob(s.url, sync.json.job.id, 120_000);
    t.diagnostic(`free ${free} bytes; job: ${job.state} ${job.errorCode}: ${job.error}; free after ${freeBytes(dir)} bytes`);
    assert.equal(job.state, 'failed');
    assert.equal(job.errorCode, 'io', job.error);
    assert.match(job.error, /no space left on device/i);
    assert.deepEqual(readdirSync(packDir).sort(), packsBefore, 'the failed fetch left files in the mirror');
    assert.ok(freeBytes(dir) > free * 0.9, 'the space the fetch took is back');
    const status = await call(s.url, 'GET', '/v1/repos/r');
    assert.equal(status.json.refs.find((x: { ref: string }) => x.ref === 'refs/heads/main').commit, up.head);
    const out = join(work, 'out-fetch');
    await cliOk(s.url, ['clone', 'r', out]);
    assert.deepEqual(compareClones(reference, out, { mode: 'editable', ignoreConfigKeys: ['remote.origin.url'] }), []);
  } finally {
    await s.close();
  }
});
