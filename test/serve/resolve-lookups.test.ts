/**
 * Resolves of unbuilt refs are open to anyone: they must not each run git on
 * the mirror. Concurrent lookups of one repository share one git run, and the
 * answer is reused until the mirror's refs change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addAndBuild, call, commit, makeUpstream, startTestServer, stderrLog, tempDir, waitJob } from './helpers.js';
// Many requests from one address as fast as they go: what is tested is not the rate limit (access/rate-limit.ts).
process.env.SNAPCLONE_RATE_LIMIT = '0';

function forEachRefRuns(since: number): number {
  return stderrLog.slice(since).join('').split('\n').filter((l) => l.includes('git for-each-ref') && l.includes('mirrors')).length;
}

test('300 concurrent resolves of unknown refs run git for-each-ref a bounded number of times', async () => {
  const work = tempDir();
  const up = makeUpstream(work);
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'demo');
    const mark = stderrLog.length;
    const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => call(s.url, 'GET', `/v1/repos/demo/resolve?ref=nosuch-${i}`)));
    for (const a of answers) assert.equal(a.status, 404, a.text);
    const runs = forEachRefRuns(mark);
    assert.ok(runs >= 1 && runs <= 3, `git for-each-ref ran ${runs} times`);

    // A ref the mirror gains is seen at once (the mirror's refs changed), not after a delay.
    commit(up.dir, { 'new.txt': 'x\n' }, 'new');
    const { execFileSync } = await import('node:child_process');
    execFileSync('git', ['tag', 'fresh'], { cwd: up.dir });
    const sync = await call(s.url, 'POST', '/v1/repos/demo/sync', {});
    assert.equal((await waitJob(s.url, sync.json.job.id)).state, 'succeeded');
    const fresh = await call(s.url, 'GET', '/v1/repos/demo/resolve?ref=fresh');
    assert.equal(fresh.status, 202, fresh.text);
  } finally {
    await s.close();
  }
});
