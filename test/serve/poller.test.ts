/**
 * Polling against a real server (1 s interval) and real upstreams: a push is
 * picked up without any trigger; an unchanged upstream queues nothing; an
 * upstream that cannot be reached is logged and does not stop the others.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync } from 'node:fs';
import { addAndBuild, call, commit, makeUpstream, startTestServer, stderrLog, tempDir } from './helpers.js';
import { until } from './held-upstream.js';
import { logText } from './log-lines.js';
import { DEFAULT_POLL_SECONDS, pollSeconds } from '../../src/serve/poller.js';

async function jobs(base: string, name: string): Promise<any[]> {
  return (await call(base, 'GET', `/v1/repos/${encodeURIComponent(name)}`)).json.jobs;
}

/** ls-remote runs of this upstream the server logged so far (debug lines of gitproc). */
function lsRemotes(url: string): number {
  return logText(stderrLog).split('\n').filter((l) => l.includes(' debug git ls-remote') && l.includes(url)).length;
}

test('polling picks up a push without any trigger, queues nothing while nothing moves, and survives an unreachable upstream', async () => {
  const root = tempDir();
  const up = makeUpstream(root, 'polled');
  const gone = makeUpstream(root, 'gone');
  const s = await startTestServer({ pollSeconds: 1 });
  try {
    await addAndBuild(s.url, up.dir, 'polled');
    await addAndBuild(s.url, gone.dir, 'gone');
    renameSync(gone.dir, `${gone.dir}-moved`); // its polls now fail

    const pushed = commit(up.dir, { 'polled.txt': 'pushed\n' }, 'pushed');
    await until('the poll to build the push', async () => (await call(s.url, 'GET', '/v1/repos/polled/resolve')).json?.commit === pushed);
    const afterPush = await jobs(s.url, 'polled');
    assert.equal(afterPush.length, 2, 'the add and one sync queued by the poll');
    assert.equal(afterPush[0].commit, pushed);
    assert.equal(afterPush[0].state, 'succeeded');

    // Three more polls of an unchanged upstream: nothing more is queued.
    const seen = lsRemotes(up.dir);
    await until('three more polls', () => lsRemotes(up.dir) >= seen + 3);
    assert.equal((await jobs(s.url, 'polled')).length, 2);
    assert.match(logText(stderrLog), /warn poll: gone: git ls-remote failed/);
    assert.equal((await jobs(s.url, 'gone')).length, 1, 'a failed poll queues nothing');
  } finally {
    await s.close();
  }
});

test('the poll interval: --poll-seconds, else $SNAPCLONE_POLL_SECONDS, else the default; 0 is off; anything else is refused', () => {
  assert.equal(pollSeconds(undefined, undefined), DEFAULT_POLL_SECONDS);
  assert.equal(pollSeconds(undefined, ''), DEFAULT_POLL_SECONDS);
  assert.equal(pollSeconds(undefined, '30'), 30);
  assert.equal(pollSeconds('5', '30'), 5);
  assert.equal(pollSeconds(0, '30'), 0);
  for (const bad of ['-1', 'abc', '1e3', ' ', 'Infinity']) assert.throws(() => pollSeconds(bad, undefined), /invalid poll interval/, bad);
  // Below a second a round of ls-remotes would run back to back (0.001 s: a 1 ms loop).
  for (const tiny of ['0.001', '0.5', 0.2]) assert.throws(() => pollSeconds(tiny, undefined), { code: 'usage', message: /below 1 s/ }, String(tiny));
  assert.throws(() => pollSeconds(undefined, '0.01'), /below 1 s/);
  assert.equal(pollSeconds('1', undefined), 1);
});
