/**
 * A burst of webhook pushes while a sync runs coalesces: the running job plus
 * one queued job that every later push joins, and that job builds the last push.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, commit, makeUpstream, startTestServer, stderrLog, tempDir, waitJob } from './helpers.js';
import { addPublicAndBuild } from './public-upstream.js';
import { heldSsh, until } from './held-upstream.js';
import { deliver, githubHeaders, githubPush, serveForgeUrl } from './webhook-support.js';

const SECRET = 'burst-secret-Tn4q';
process.env.SNAPCLONE_GITHUB_WEBHOOK_SECRET = SECRET;
const held = heldSsh(tempDir('snapclone-held-'));

test('20 pushes in a burst coalesce into the running sync and one queued sync', async () => {
  const up = makeUpstream(tempDir(), 'burst');
  serveForgeUrl('https://github.com/acme/burst.git', held.url(up.dir));
  const s = await startTestServer({ pollSeconds: 0 });
  try {
    const first = await addPublicAndBuild(s.url, 'https://github.com/acme/burst.git', 'burst');
    await until('the first build to be re-checked', () => stderrLog.join('').includes(`re-check: burst: nothing new upstream after job ${first.id}`));
    const n = held.connections();
    held.holdBefore(n + 1); // the first push's sync waits at its ls-remote
    let before = up.head;
    const ids: number[] = [];
    for (let i = 0; i < 20; i++) {
      const after = commit(up.dir, { 'burst.txt': `push ${i}\n` }, `push ${i}`);
      const body = JSON.stringify(githubPush({ ref: 'refs/heads/main', before, after, fullName: 'acme/burst', host: 'github.com' }));
      const r = await deliver(s.url, 'github', body, githubHeaders('push', SECRET, body));
      assert.equal(r.status, 202, r.text);
      ids.push(r.json.jobs[0].id);
      before = after;
    }
    assert.equal(new Set(ids).size, 2, JSON.stringify(ids));
    assert.ok(ids.slice(1).every((id) => id === ids[1]), JSON.stringify(ids));
    held.release(n + 1);
    for (const id of new Set(ids)) {
      const j = await waitJob(s.url, id);
      assert.equal(j.state, 'succeeded', j.error);
      assert.equal(j.commit, before, 'both build the last push');
    }
    const jobs = (await call(s.url, 'GET', '/v1/repos/burst')).json.jobs.filter((j: any) => j.id > first.id);
    assert.equal(jobs.length, 2);
    assert.equal((await call(s.url, 'GET', '/v1/repos/burst/resolve')).json.commit, before);
  } finally {
    await s.close();
  }
});
