/**
 * Missing PostgreSQL binaries: a skip on a developer's machine, a failure in CI
 * (SNAPCLONE_REQUIRE_SERVERS=1), saying what is missing. Runs the PostgreSQL store tests in a
 * child process with SNAPCLONE_POSTGRES_BIN pointing at a directory without them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const pgTests = fileURLToPath(new URL('./postgres-store.test.js', import.meta.url));

function runWithout(require: boolean) {
  const env: NodeJS.ProcessEnv = { ...process.env, SNAPCLONE_POSTGRES_BIN: '/nonexistent/postgresql/bin' };
  delete env.SNAPCLONE_REQUIRE_SERVERS;
  delete env.NODE_TEST_CONTEXT; // run as its own test process, not as a child of this one
  if (require) env.SNAPCLONE_REQUIRE_SERVERS = '1';
  return spawnSync(process.execPath, ['--test', '--test-reporter=tap', pgTests], { env, encoding: 'utf8', timeout: 60_000 });
}

test('without PostgreSQL the store tests are skipped, saying what is missing', () => {
  const res = runWithout(false);
  assert.equal(res.status, 0, res.stdout + res.stderr);
  assert.match(res.stdout, /# SKIP PostgreSQL server binaries .* are not installed/);
  assert.match(res.stdout, /# fail 0/);
});

test('without PostgreSQL and SNAPCLONE_REQUIRE_SERVERS=1 they fail, saying what is missing', () => {
  const res = runWithout(true);
  assert.notEqual(res.status, 0);
  assert.match(res.stdout + res.stderr, /SNAPCLONE_REQUIRE_SERVERS=1 but PostgreSQL server binaries .* are not installed/);
});
