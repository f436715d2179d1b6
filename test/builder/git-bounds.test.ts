/**
 * The time bounds of a git run (total and stall) and the environment that sets them for
 * upstreams; a full disk in git's stderr is code io.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runGit } from '../../src/builder/gitproc.js';
import { upstreamBounds } from '../../src/builder/upstream.js';
import { SnapError } from '../../src/util/errors.js';

// A git that prints something every 100 ms, then nothing, forever (a shell alias: real git, real child).
const TICKS_THEN_SILENCE = ['-c', 'alias.tick=!f() { for i in 1 2 3 4 5 6 7 8; do echo tick >&2; sleep 0.1; done; exec sleep 60; }; f', 'tick'];

test('a git that keeps talking is stopped by its total bound, with code timeout', async () => {
  const t0 = Date.now();
  await assert.rejects(runGit(['-c', 'alias.talk=!while :; do echo progress >&2; sleep 0.05; done', 'talk'], { timeoutMs: 600, stallMs: 400 }), (e: unknown) => {
    assert.ok(e instanceof SnapError && e.code === 'timeout', String(e));
    assert.match((e as Error).message, /ran longer than 0\.6 s/);
    return true;
  });
  assert.ok(Date.now() - t0 < 10_000);
});

test('a git that goes silent is stopped by its stall bound only after its output stops', async () => {
  const t0 = Date.now();
  await assert.rejects(runGit(TICKS_THEN_SILENCE, { stallMs: 500 }), (e: unknown) => {
    assert.ok(e instanceof SnapError && e.code === 'timeout', String(e));
    assert.match((e as Error).message, /received nothing for 0\.5 s/);
    return true;
  });
  // It ticked for ~0.8 s: a stall timer that ignored output would have fired at 0.5 s.
  assert.ok(Date.now() - t0 >= 800, `stopped after ${Date.now() - t0} ms, while it still printed`);
});

test('a git whose stderr says the disk is full fails with code io, whatever code the caller asked for', async () => {
  await assert.rejects(runGit(['-c', 'alias.full=!echo "fatal: write error: No space left on device" >&2; exit 128', 'full'], { env: 'network', errorCode: 'unreachable' }), (e: unknown) => {
    assert.ok(e instanceof SnapError && e.code === 'io', String(e));
    assert.match((e as Error).message, /disk full/);
    return true;
  });
});

test('upstream bounds: defaults, overrides, and a clear error for a bad value', () => {
  assert.deepEqual(upstreamBounds({}), { askMs: 120_000, fetchMs: 3_600_000, stallMs: 300_000 });
  assert.deepEqual(upstreamBounds({ SNAPCLONE_UPSTREAM_TIMEOUT_SECONDS: '5', SNAPCLONE_FETCH_TIMEOUT_SECONDS: '0.5', SNAPCLONE_UPSTREAM_STALL_SECONDS: '30' }), { askMs: 5000, fetchMs: 500, stallMs: 30_000 });
  for (const bad of ['0', '-1', 'ten', '1e9'])
    assert.throws(() => upstreamBounds({ SNAPCLONE_UPSTREAM_STALL_SECONDS: bad }), (e: unknown) => e instanceof SnapError && e.code === 'usage' && /SNAPCLONE_UPSTREAM_STALL_SECONDS/.test((e as Error).message));
});
