/**
 * An upstream that stalls or refuses during a sync: the job fails within the configured bound
 * (SNAPCLONE_UPSTREAM_TIMEOUT_SECONDS for ls-remote, SNAPCLONE_UPSTREAM_STALL_SECONDS for a
 * transfer that receives nothing) with code timeout or unreachable, the repository's status
 * shows it, and the previous build keeps serving (a clone equals `git clone` of the old state).
 * Over smart HTTP (git http-backend on loopback) and over "ssh" (a script that holds the connection).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { addAndBuild, call, commit, makeUpstream, startTestServer, tempDir, waitJob } from './helpers.js';
import { addPublicAndBuild } from './public-upstream.js';
import { heldSsh, type HeldUpstream } from './held-upstream.js';
import { startHttpUpstream, type HttpUpstream } from './http-upstream.js';
import { cliOk } from '../e2e/harness.js';
import { compareClones } from '../support/compare.js';
import { git as hermeticGit } from '../support/git.js';


const ASK_SECONDS = 3;
const STALL_SECONDS = 2;
// Read by every ls-remote and fetch of this process's server.
process.env.SNAPCLONE_UPSTREAM_TIMEOUT_SECONDS = String(ASK_SECONDS);
process.env.SNAPCLONE_UPSTREAM_STALL_SECONDS = String(STALL_SECONDS);
process.env.SNAPCLONE_FETCH_TIMEOUT_SECONDS = '60';
/** Well inside the defaults (120 s, 300 s): a job that ends sooner was stopped by the configured bound. */
const WITHIN_MS = 30_000;

let work: string;
let http: HttpUpstream;
let held: HeldUpstream;
let s: Awaited<ReturnType<typeof startTestServer>>;

before(async () => {
  work = tempDir('snapclone-upstream-faults-');
  mkdirSync(join(work, 'held'));
  held = heldSsh(join(work, 'held')); // GIT_SSH_COMMAND for this process: the file's own
  http = await startHttpUpstream(work);
  s = await startTestServer();
});

after(async () => {
  await s?.close();
  await http?.close();
  for (let i = 1; i <= held.connections() + 2; i++) held.release(i);
});

/** Sync and wait: the failed job and how long it took. */
async function failingSync(repo: string): Promise<{ job: any; ms: number }> {
  const t0 = Date.now();
  const sync = await call(s.url, 'POST', `/v1/repos/${repo}/sync`, {});
  assert.equal(sync.status, 202, sync.text);
  const job = await waitJob(s.url, sync.json.job.id, 120_000);
  return { job, ms: Date.now() - t0 };
}

async function assertServes(repo: string, reference: string, tag: string): Promise<void> {
  const status = await call(s.url, 'GET', `/v1/repos/${repo}`);
  assert.equal(status.json.jobs[0].state, 'failed', 'status shows the failed sync');
  const out = join(work, `clone-${repo}-${tag}`);
  await cliOk(s.url, ['clone', repo, out]);
  assert.deepEqual(compareClones(reference, out, { mode: 'editable', ignoreConfigKeys: ['remote.origin.url'] }), [], `${repo} after ${tag}`);
}

function noTmpPacks(repo: string): void {
  const packDir = join(s.dataDir, 'mirrors', `${repo}.git`, 'objects', 'pack');
  assert.deepEqual(readdirSync(packDir).filter((f) => f.startsWith('tmp_')), [], 'a failed fetch left a temporary pack in the mirror');
}

test('http upstream that stalls, stalls only the fetch, refuses: bounded failures, status shows them, the old build serves, a later sync succeeds', { timeout: 240_000 }, async (t) => {
  const up = makeUpstream(work, 'up');
  await addAndBuild(s.url, http.url('up'), 'h');
  const reference = join(work, 'ref-h-old');
  hermeticGit(['clone', '-q', up.dir, reference], { cwd: work });
  const newHead = commit(up.dir, { 'new.txt': 'pushed\n' }, 'a push');

  await http.setMode('stall');
  const stalled = await failingSync('h');
  t.diagnostic(`stalled upstream: ${stalled.job.errorCode} after ${stalled.ms} ms: ${stalled.job.error}`);
  assert.equal(stalled.job.errorCode, 'timeout', stalled.job.error);
  assert.ok(stalled.ms < WITHIN_MS, `failed after ${stalled.ms} ms`);
  assert.ok(http.stalled > 0);
  await http.setMode('serve');
  await assertServes('h', reference, 'stall');

  await http.setMode('stall-fetch');
  const fetchStalled = await failingSync('h');
  t.diagnostic(`fetch stalled: ${fetchStalled.job.errorCode} after ${fetchStalled.ms} ms: ${fetchStalled.job.error}`);
  assert.equal(fetchStalled.job.errorCode, 'timeout', fetchStalled.job.error);
  assert.match(fetchStalled.job.error, /too slow/);
  assert.equal(fetchStalled.job.phase, 'fetching');
  assert.ok(fetchStalled.ms < WITHIN_MS, `failed after ${fetchStalled.ms} ms`);
  noTmpPacks('h');
  await http.setMode('serve');
  await assertServes('h', reference, 'fetch-stall');

  await http.setMode('refuse');
  const refused = await failingSync('h');
  t.diagnostic(`refused: ${refused.job.errorCode} after ${refused.ms} ms: ${refused.job.error}`);
  assert.equal(refused.job.errorCode, 'unreachable', refused.job.error);
  assert.match(refused.job.error, /refused|connect/i);
  await http.setMode('serve');
  await assertServes('h', reference, 'refuse');

  // Back: the next sync builds the push.
  const sync = await call(s.url, 'POST', '/v1/repos/h/sync', {});
  const done = await waitJob(s.url, sync.json.job.id, 120_000);
  assert.equal(done.state, 'succeeded', done.error);
  assert.equal(done.commit, newHead);
  hermeticGit(['clone', '-q', up.dir, join(work, 'ref-h-new')], { cwd: work });
  const out = join(work, 'clone-h-new');
  await cliOk(s.url, ['clone', 'h', out]);
  assert.deepEqual(compareClones(join(work, 'ref-h-new'), out, { mode: 'editable', ignoreConfigKeys: ['remote.origin.url'] }), []);
});

test('ssh upstream whose connection hangs at ls-remote, then at the fetch: code timeout within the bound, the old build serves', { timeout: 240_000 }, async (t) => {
  const up = makeUpstream(work, 'up-ssh');
  await addPublicAndBuild(s.url, held.url(up.dir), 's');
  const reference = join(work, 'ref-s-old');
  hermeticGit(['clone', '-q', up.dir, reference], { cwd: work });
  commit(up.dir, { 'new.txt': 'pushed\n' }, 'a push');

  let n = held.connections();
  held.holdBefore(n + 1); // the sync's ls-remote
  const asked = await failingSync('s');
  t.diagnostic(`ssh ls-remote held: ${asked.job.errorCode} after ${asked.ms} ms: ${asked.job.error}`);
  assert.equal(asked.job.errorCode, 'timeout', asked.job.error);
  assert.match(asked.job.error, /did not answer/);
  assert.ok(asked.ms < WITHIN_MS, `failed after ${asked.ms} ms`);
  held.release(n + 1);
  await assertServes('s', reference, 'ls-remote-hang');

  n = held.connections();
  held.holdBefore(n + 2); // ls-remote through, the fetch held
  const fetched = await failingSync('s');
  t.diagnostic(`ssh fetch held: ${fetched.job.errorCode} after ${fetched.ms} ms: ${fetched.job.error}`);
  assert.equal(fetched.job.errorCode, 'timeout', fetched.job.error);
  assert.equal(fetched.job.phase, 'fetching');
  assert.ok(fetched.ms < WITHIN_MS, `failed after ${fetched.ms} ms`);
  held.release(n + 2);
  noTmpPacks('s');
  await assertServes('s', reference, 'fetch-hang');
});
