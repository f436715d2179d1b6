/**
 * --depth 1 from the archive asks, after the shallow resolve, for the files
 * manifest of the same commit. That second lookup is optional: whatever goes
 * wrong with it (the files stage failed or is still building, a 429, a 202
 * from a server that predates peek=1, a garbled answer), the clone goes on
 * from the shallow manifest's packs and equals git clone --depth 1; and the
 * lookup itself never starts a build, waits out a 429 or follows a job.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { RunningServer } from '../../src/serve/server.js';
import { makeMediumRepo, type MediumRepo } from '../support/fixtures.js';
import { compareClones } from '../support/compare.js';
import { git, gitText, gitTry, tmpDir } from '../support/git.js';
import { cliOk } from './harness.js';
import { call, startTestServer, waitJob } from '../serve/helpers.js';
import { FaultyProxy } from '../client/faulty-proxy.js';

let work: string;
let server: RunningServer;
let proxy: FaultyProxy;
const up: Record<string, MediumRepo> = {};
const jobs: Record<string, number> = {};
let releaseHeld!: () => void;
const held = new Promise<void>((r) => (releaseHeld = r));
let n = 0;

before(async () => {
  process.env.SNAPCLONE_LOG ??= 'warn';
  work = tmpDir('snapclone-depth1-peek');
  let reachedHeld!: () => void;
  const atHeld = new Promise<void>((r) => (reachedHeld = r));
  // The files stage of peek-failed fails, peek-held's waits until the end; peek-ok builds whole.
  const beforeStep = async (step: string, repo: string) => {
    if (step !== 'files') return;
    if (repo === 'peek-failed') throw new Error('files stage broken by the test');
    if (repo === 'peek-held') (reachedHeld(), await held);
  };
  server = await startTestServer({ buildOptions: { beforeStep } });
  proxy = await FaultyProxy.start(server.url);
  // held last: it would hold a one-job queue.
  for (const name of ['peek-failed', 'peek-ok', 'peek-held']) {
    up[name] = makeMediumRepo(join(work, name), { commits: 12, seed: name.length });
    const add = await call(server.url, 'POST', '/v1/repos', { url: up[name]!.url, name });
    assert.equal(add.status, 201, add.text);
    jobs[name] = add.json.job.id as number;
  }
  assert.equal((await waitJob(server.url, jobs['peek-failed']!)).state, 'failed');
  assert.equal((await waitJob(server.url, jobs['peek-ok']!)).state, 'succeeded');
  await atHeld;
});

after(async () => {
  releaseHeld();
  await proxy?.close();
  await server?.close();
});

/** A --depth 1 clone from the archive (forced) through the proxy; it must equal git clone --depth 1. */
async function depth1(name: string): Promise<void> {
  const g = join(work, `git-${++n}`);
  const s = join(work, `snap-${n}`);
  const gr = gitTry(['clone', '--quiet', '--depth', '1', up[name]!.url, g], { cwd: work });
  assert.equal(gr.status, 0, `git clone failed: ${gr.stderr.toString()}`);
  await cliOk(proxy.url, ['clone', name, s, '--depth', '1'], { env: { SNAPCLONE_DEPTH1_TREE: 'archive' } });
  assert.deepEqual(compareClones(g, s, { mode: 'editable' }), []);
  git(['fsck', '--full'], { cwd: s });
  assert.equal(gitText(['rev-list', '--count', 'HEAD'], { cwd: s }).trim(), '1');
}

const filesResolves = (name: string) => proxy.seen.filter((s) => s.path === `/v1/repos/${name}/resolve` && /(^|&)mode=files(&|$)/.test(s.query));
const peekPath = (name: string) => `/v1/repos/${name}/resolve?ref=&mode=files&inline=1&peek=1`;

/** No job was started after `last` (job ids are one sequence). */
async function noNewJob(last: number): Promise<void> {
  const next = await call(server.url, 'GET', `/v1/jobs/${last + 1}`);
  assert.equal(next.status, 404, `a job was started: ${next.text}`);
}

test('the server answers a peek with 204 when the files stage failed or is building, without starting a build', async () => {
  const last = Math.max(...Object.values(jobs));
  for (const name of ['peek-failed', 'peek-held']) {
    assert.equal((await call(server.url, 'GET', `/v1/repos/${name}/resolve?mode=shallow`)).status, 200);
    const r = await call(server.url, 'GET', peekPath(name));
    assert.equal(r.status, 204, `${name}: ${r.text}`);
  }
  assert.ok((await call(server.url, 'GET', `/v1/repos/peek-failed/resolve?mode=files`)).status >= 400, 'without peek: the failed build');
  assert.equal((await call(server.url, 'GET', `/v1/repos/peek-held/resolve?mode=files`)).status, 202, 'without peek: the job to follow');
  const ok = await call(server.url, 'GET', peekPath('peek-ok'));
  assert.equal(ok.status, 200);
  assert.equal(ok.json.mode, 'files');
  await noNewJob(last);
});

test('the files stage failed: the depth-1 clone succeeds from the packs', async () => {
  const last = Math.max(...Object.values(jobs));
  await depth1('peek-failed');
  assert.equal(filesResolves('peek-failed').length, 1);
  assert.equal(filesResolves('peek-failed')[0]!.status, 204);
  await noNewJob(last);
});

test('the files stage is still building: the clone does not wait for it', async () => {
  await depth1('peek-held');
  assert.deepEqual(filesResolves('peek-held').map((s) => s.status), [204]);
  assert.equal(proxy.seen.filter((s) => s.path.startsWith('/v1/jobs/')).length, 0, 'no job followed');
});

test('a 429, an old server\'s 202 with a job, or a garbled answer to the files lookup: one request, then the shallow manifest', async () => {
  // The lookup as a whole clone uses it (archive chunks fetched) when nothing goes wrong.
  const before = proxy.seen.length;
  await depth1('peek-ok');
  assert.deepEqual(filesResolves('peek-ok').map((s) => s.status), [200]);
  assert.ok(proxy.seen.slice(before).some((s) => s.path.startsWith('/v1/artifacts/')));

  const answers = [
    { status: 429, body: { error: 'slow down', code: 'rate-limited' }, headers: { 'retry-after': '30' } },
    { status: 202, body: { status: 'building', job: { id: 987654 }, retryAfter: 2 }, headers: { 'retry-after': '2' } },
    { status: 500, body: { error: 'broken', code: 'internal' } },
    { status: 200, body: { repo: 'peek-ok' } },
  ];
  for (const a of answers) {
    proxy.intercept = (req, path) => (path === '/v1/repos/peek-ok/resolve' && /[?&]mode=files(&|$)/.test(req.url ?? '') ? a : null);
    const seen = filesResolves('peek-ok').length;
    await depth1('peek-ok');
    assert.equal(filesResolves('peek-ok').length, seen + 1, `${a.status}: asked once`);
  }
  proxy.intercept = () => null;
  assert.equal(proxy.seen.filter((s) => s.path.startsWith('/v1/jobs/')).length, 0, 'no job followed');

  // A files answer whose inline manifest is not the one it names (integrity): also the shallow manifest.
  proxy.rewriteResolve = (j) => (j.mode === 'files' ? { ...j, inline: { manifest: Buffer.from('{}').toString('base64'), table: null } } : j);
  try {
    await depth1('peek-ok');
  } finally {
    proxy.rewriteResolve = null;
  }
});
