/**
 * Re-check after a build, against a real server and an upstream whose
 * connections the test holds (held-upstream.ts): a push that lands while a
 * build runs is built next without any trigger, and an upstream pushed to on
 * every connection (faster than it builds) gets a bounded chain of re-syncs.
 * Polling is off, so nothing but the re-check can queue those builds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, commit, makeUpstream, startTestServer, stderrLog, tempDir, waitJob } from './helpers.js';
import { addPublicAndBuild } from './public-upstream.js';
import { heldSsh, until } from './held-upstream.js';
import { MAX_RECHECK_CHAIN } from '../../src/serve/recheck.js';

const held = heldSsh(tempDir('snapclone-held-'));

async function jobsAfter(base: string, name: string, id: number): Promise<any[]> {
  const st = await call(base, 'GET', `/v1/repos/${encodeURIComponent(name)}`);
  return st.json.jobs.filter((j: any) => j.id > id).sort((a: any, b: any) => a.id - b.id);
}

const logged = (text: string) => () => stderrLog.join('').includes(text);

test('a push that lands while a build runs is built next, without any trigger', async () => {
  const up = makeUpstream(tempDir(), 'busy');
  const s = await startTestServer({ pollSeconds: 0 });
  try {
    const first = await addPublicAndBuild(s.url, held.url(up.dir), 'busy');
    await until('the first build to be re-checked', logged(`re-check: busy: nothing new upstream after job ${first.id}`));

    const c1 = commit(up.dir, { 'one.txt': '1\n' }, 'one');
    // The sync asks the upstream (connection n+1), then fetches (n+2): hold the fetch once
    // the upstream has sent its objects, and push meanwhile.
    const n = held.connections();
    held.holdAfter(n + 2);
    const r = await call(s.url, 'POST', '/v1/repos/busy/sync', {});
    assert.equal(r.status, 202, r.text);
    await until('the build to be fetching', () => held.waiting(n + 2));
    const c2 = commit(up.dir, { 'two.txt': '2\n' }, 'two');
    held.release(n + 2);

    const j1 = await waitJob(s.url, r.json.job.id);
    assert.equal(j1.state, 'succeeded', j1.error);
    assert.equal(j1.commit, c1, 'the held build fetched before the push');
    await until('a build of the pushed commit', async () => (await jobsAfter(s.url, 'busy', j1.id)).some((j) => j.state === 'succeeded'));
    const next = await jobsAfter(s.url, 'busy', j1.id);
    assert.equal(next.length, 1, JSON.stringify(next));
    assert.equal(next[0].commit, c2);
    const res = await call(s.url, 'GET', '/v1/repos/busy/resolve');
    assert.equal(res.json.commit, c2);
    await until('the second build to be re-checked', logged(`re-check: busy: nothing new upstream after job ${next[0].id}`));
    assert.equal((await jobsAfter(s.url, 'busy', j1.id)).length, 1, 'nothing more once the upstream is caught up');
  } finally {
    await s.close();
  }
});

test(`an upstream that moves on every look gets at most ${MAX_RECHECK_CHAIN} re-syncs in a row; the next trigger starts afresh`, async () => {
  const up = makeUpstream(tempDir(), 'racing');
  const s = await startTestServer({ pollSeconds: 0 });
  try {
    const first = await addPublicAndBuild(s.url, held.url(up.dir), 'racing');
    await until('the first build to be re-checked', logged(`re-check: racing: nothing new upstream after job ${first.id}`));

    held.commitOnConnect(up.dir); // every ls-remote and fetch sees a new commit
    const r = await call(s.url, 'POST', '/v1/repos/racing/sync', {});
    assert.equal(r.status, 202, r.text);
    await until('the chain to reach its bound', logged(`re-check: racing was re-synced ${MAX_RECHECK_CHAIN} times in a row`));
    held.commitOnConnect(null);
    const chain = await jobsAfter(s.url, 'racing', first.id);
    assert.equal(chain.length, 1 + MAX_RECHECK_CHAIN, JSON.stringify(chain.map((j) => [j.id, j.state])));
    assert.equal(chain[0].id, r.json.job.id);
    for (const j of chain) assert.equal((await waitJob(s.url, j.id)).state, 'succeeded');
    assert.ok(stderrLog.join('').includes(`not re-checking after job ${chain.at(-1).id}`));

    // A later sync is re-checked again (the count was reset), and finds nothing new.
    const again = await call(s.url, 'POST', '/v1/repos/racing/sync', {});
    assert.equal((await waitJob(s.url, again.json.job.id)).state, 'succeeded');
    await until('the later sync to be re-checked', logged(`re-check: racing: nothing new upstream after job ${again.json.job.id}`));
    assert.equal((await jobsAfter(s.url, 'racing', again.json.job.id)).length, 0);
  } finally {
    await s.close();
  }
});
