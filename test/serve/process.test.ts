/**
 * The server as a process: one server per data dir (a second one, on any
 * port, is refused and changes nothing), start-up recovery only after the lock
 * and the port, start-up errors as one line and a documented exit code,
 * signals (SIGHUP, SIGTERM through `npm start`), bracketed IPv6 hosts.
 * Real `snapclone serve` processes, real git, real SQLite.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { makeUpstream, tempDir } from './helpers.js';
import { getJson, pidsWithArg, runCli, spawnServe, until } from './process-helpers.js';
import { logText } from './log-lines.js';
import { SqliteMetadataStore } from '../../src/metadata/sqlite/sqlite-store.js';
import { INTERRUPTED } from '../../src/queue/local/local-queue.js';
import { startServer } from '../../src/serve/server.js';
import { SnapError } from '../../src/util/errors.js';

/** git config for the server's children via the environment: remote.origin.uploadpack runs only for the mirror's fetch. */
function uploadPackEnv(command: string): Record<string, string> {
  return { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'remote.origin.uploadpack', GIT_CONFIG_VALUE_0: command };
}

function oneLineError(stderr: string): void {
  const lines = stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line expected:\n${stderr}`);
  assert.match(lines[0]!, /^snapclone: /);
  assert.doesNotMatch(stderr, /\n\s+at |unexpected error/, 'no stack trace');
}

async function post(url: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

test('a second server on a data dir in use is refused (exit 14, names the pid) on any port, and leaves the running build alone', { timeout: 180_000 }, async () => {
  const work = tempDir();
  const up = makeUpstream(work);
  const dataDir = join(work, 'data');
  const gate = join(work, 'release-fetch');
  // The build's fetch waits for the gate, so the job is reliably running while the second server tries to start.
  const a = spawnServe(['serve', '--data-dir', dataDir, '--port', '0'], {
    env: uploadPackEnv(`while [ ! -e '${gate}' ]; do sleep 0.05; done; git-upload-pack`),
  });
  try {
    const url = await a.ready;
    const add = await post(`${url}/v1/repos`, { url: up.dir, name: 'busy' });
    assert.equal(add.status, 201, JSON.stringify(add.json));
    const jobUrl = `${url}/v1/jobs/${add.json.job.id}`;
    await until('the build is running', async () => (await getJson(jobUrl)).json.state === 'running');

    const port = new URL(url).port;
    for (const p of ['0', port]) {
      const b = await runCli(['serve', '--data-dir', dataDir, '--port', p]);
      assert.equal(b.code, 14, `second server on port ${p}: ${b.stderr}`);
      oneLineError(b.stderr);
      assert.match(b.stderr, new RegExp(`in use by another snapclone server or worker \\(pid ${a.child.pid}\\b`));
      const job = (await getJson(jobUrl)).json;
      assert.equal(job.state, 'running', `the refused server must not touch the running job: ${JSON.stringify(job)}`);
    }

    writeFileSync(gate, '');
    await until('the build ends', async () => ['succeeded', 'failed'].includes((await getJson(jobUrl)).json.state), 60_000);
    assert.equal((await getJson(jobUrl)).json.state, 'succeeded', JSON.stringify((await getJson(jobUrl)).json));

    // The lock dies with its holder, however it dies: no stale lock after SIGKILL.
    a.child.kill('SIGKILL');
    await a.exited;
    const c = spawnServe(['serve', '--data-dir', dataDir, '--port', '0']);
    try {
      const curl = await c.ready;
      assert.equal((await getJson(`${curl}/v1/repos/busy/resolve`)).status, 200);
      assert.equal(JSON.parse(readFileSync(join(dataDir, 'server.pid'), 'utf8')).pid, c.child.pid);
    } finally {
      c.child.kill('SIGTERM');
      assert.deepEqual(await c.exited, { code: 0, signal: null });
    }
    assert.equal(existsSync(join(dataDir, 'server.pid')), false, 'a clean shutdown removes its pid file');
  } finally {
    writeFileSync(gate, '');
    a.child.kill('SIGKILL');
    await a.exited;
  }
});

test('a server that cannot bind its port changes nothing in its database; recovery runs once it serves', { timeout: 120_000 }, async () => {
  const dataDir = join(tempDir(), 'data');
  mkdirSync(dataDir);
  // A job a crashed server left running.
  const meta = new SqliteMetadataStore(join(dataDir, 'snapclone.db'));
  const left = await meta.createJob({ repo: 'x', kind: 'sync', ref: null, state: 'running', phase: 'fetching', error: null, commit: null, createdAt: 1, startedAt: 2, finishedAt: null });
  meta.close();

  const taken = createNetServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  try {
    const port = (taken.address() as AddressInfo).port;
    const r = await runCli(['serve', '--data-dir', dataDir, '--port', String(port)]);
    assert.equal(r.code, 2, r.stderr);
    oneLineError(r.stderr);
    assert.match(r.stderr, /already in use/);
    const check = new SqliteMetadataStore(join(dataDir, 'snapclone.db'));
    try {
      assert.equal((await check.getJob(left.id))!.state, 'running', 'a failed start must not run recovery');
    } finally {
      await check.close();
    }
  } finally {
    taken.close();
  }

  const s = spawnServe(['serve', '--data-dir', dataDir, '--port', '0']);
  try {
    const url = await s.ready;
    const job = (await getJson(`${url}/v1/jobs/${left.id}`)).json;
    assert.equal(job.state, 'failed');
    assert.equal(job.error, INTERRUPTED);
    assert.match(logText(s.stderr()), new RegExp(`warn marked 1 job\\(s\\) .* ${left.id}\\n`));
  } finally {
    s.child.kill('SIGTERM');
    await s.exited;
  }
});

test('two servers in one process on one data dir: the second is refused until the first closes', async () => {
  const dataDir = join(tempDir(), 'data');
  const first = await startServer({ host: '127.0.0.1', port: 0, dataDir });
  try {
    await assert.rejects(
      startServer({ host: '127.0.0.1', port: 0, dataDir }),
      (e: unknown) => e instanceof SnapError && e.code === 'locked' && e.message.includes(`pid ${process.pid}`),
    );
    assert.equal((await getJson(`${first.url}/healthz`)).status, 200, 'the first one keeps serving');
  } finally {
    await first.close();
  }
  const second = await startServer({ host: '127.0.0.1', port: 0, dataDir });
  await second.close();
  // Brackets do not make a wildcard address loopback.
  for (const host of ['[::]', '[::ffff:0.0.0.0]']) {
    await assert.rejects(startServer({ host, port: 0, dataDir }), (e: unknown) => e instanceof SnapError && e.code === 'usage', host);
  }
});

test('a data dir that is not a usable directory is one line and exit 2, promptly', { timeout: 180_000 }, async () => {
  const work = tempDir();
  const file = join(work, 'a-file');
  writeFileSync(file, 'not a dir\n');
  const bad = [file, join(file, 'sub')];
  // Node's recursive mkdir loops forever on /proc (mkdir there fails with ENOENT while the parent exists).
  if (existsSync('/proc/self')) bad.push('/proc/nope', '/proc/nope/deeper');
  for (const dir of bad) {
    const r = await runCli(['serve', '--data-dir', dir, '--port', '0']);
    assert.equal(r.code, 2, `${dir}: ${r.code ?? r.signal} ${r.stderr}`);
    oneLineError(r.stderr);
    assert.ok(r.stderr.includes(dir), r.stderr);
    assert.match(r.stderr, /not a usable directory/);
  }
  assert.equal(readFileSync(file, 'utf8'), 'not a dir\n');
});

test('a corrupt database is one line naming the file and what to do, exit 7, and the file is left as it was', { timeout: 60_000 }, async () => {
  const dataDir = join(tempDir(), 'data');
  mkdirSync(dataDir);
  const db = join(dataDir, 'snapclone.db');
  const garbage = Buffer.alloc(8192, 'this is not sqlite ');
  writeFileSync(db, garbage);
  // At the default log level: SNAPCLONE_LOG=debug adds the cause's stack on purpose.
  const r = await runCli(['serve', '--data-dir', dataDir, '--port', '0'], { SNAPCLONE_LOG: 'info' });
  assert.equal(r.code, 7, r.stderr);
  oneLineError(r.stderr);
  assert.ok(r.stderr.includes(db), r.stderr);
  assert.match(r.stderr, /damaged.*backup/);
  assert.deepEqual(readFileSync(db), garbage);
  // The failed start released the lock: with the damaged file moved aside, a server starts.
  renameSync(db, `${db}.damaged`);
  const s = spawnServe(['serve', '--data-dir', dataDir, '--port', '0']);
  try {
    await s.ready;
  } finally {
    s.child.kill('SIGTERM');
    await s.exited;
  }
});

test('--host [::1] is accepted as loopback, like ::1', { timeout: 60_000 }, async (t) => {
  const probe = createNetServer();
  const v6 = await new Promise<boolean>((r) => {
    probe.once('error', () => r(false));
    probe.listen(0, '::1', () => r(true));
  });
  probe.close();
  if (!v6) return t.skip('no IPv6 loopback on this machine');
  const s = spawnServe(['serve', '--host', '[::1]', '--data-dir', join(tempDir(), 'data'), '--port', '0']);
  try {
    const url = await s.ready;
    assert.match(url, /^http:\/\/\[::1\]:\d+$/);
    assert.equal((await getJson(`${url}/healthz`)).status, 200);
  } finally {
    s.child.kill('SIGTERM');
    await s.exited;
  }
});

test('SIGHUP shuts the server down like SIGTERM: exit 0, lock released', { timeout: 60_000 }, async () => {
  const dataDir = join(tempDir(), 'data');
  const s = spawnServe(['serve', '--data-dir', dataDir, '--port', '0']);
  await s.ready;
  s.child.kill('SIGHUP');
  assert.deepEqual(await s.exited, { code: 0, signal: null });
  assert.match(s.stderr(), /shutting down/);
  const again = spawnServe(['serve', '--data-dir', dataDir, '--port', '0']);
  try {
    await again.ready;
  } finally {
    again.child.kill('SIGTERM');
    await again.exited;
  }
});

test('SIGTERM to `npm start` stops the server (no orphan)', { timeout: 120_000 }, async (t) => {
  const npm = spawnSync('npm', ['--version']);
  if (npm.status !== 0) return t.skip('npm is not on PATH');
  const dataDir = join(tempDir(), 'data-npm');
  const s = spawnServe(['--data-dir', dataDir, '--port', '0'], { cmd: ['npm', 'start', '--silent', '--'], env: { npm_config_update_notifier: 'false' } });
  try {
    const url = await s.ready;
    assert.equal((await getJson(`${url}/healthz`)).status, 200);
    s.child.kill('SIGTERM');
    await s.exited;
    await until('the server stops answering', async () => {
      try {
        await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
        return false;
      } catch {
        return true;
      }
    });
    await until('no process serves the data dir', () => pidsWithArg(dataDir).length === 0);
  } finally {
    s.child.kill('SIGKILL');
    for (const pid of pidsWithArg(dataDir)) process.kill(pid, 'SIGKILL'); // an orphan the old `npm start` left
  }
});

test('a failed fetch is stored as "git fetch failed" with git\'s own reason, not its boilerplate', { timeout: 120_000 }, async () => {
  const work = tempDir();
  const up = makeUpstream(work);
  const s = spawnServe(['serve', '--data-dir', join(work, 'data'), '--port', '0'], {
    env: uploadPackEnv(`echo 'fatal: the upstream disk is on fire' >&2; false`),
  });
  try {
    const url = await s.ready;
    const add = await post(`${url}/v1/repos`, { url: up.dir, name: 'fire' });
    assert.equal(add.status, 201, JSON.stringify(add.json));
    const jobUrl = `${url}/v1/jobs/${add.json.job.id}`;
    await until('the build ends', async () => ['succeeded', 'failed'].includes((await getJson(jobUrl)).json.state), 60_000);
    const job = (await getJson(jobUrl)).json;
    assert.equal(job.state, 'failed');
    assert.match(job.error, /^git fetch failed \(exit \d+\): fatal: the upstream disk is on fire/);
    assert.doesNotMatch(job.error, /Please make sure|git -c/);
    assert.doesNotMatch(job.error, /[\u0000-\u001f\u007f]/, 'no control characters in a stored error');
    // The log says so too, and at debug shows the git commands with their durations.
    assert.match(logText(s.stderr()), /error job \d+ failed after \d+ ms: git fetch failed/);
    assert.match(logText(s.stderr()), /debug git -c pack\.threads=1 fetch .*: exit \d+, \d+ ms/);
    assert.match(logText(s.stderr()), /debug git ls-remote .*: exit 0, \d+ ms/);
  } finally {
    s.child.kill('SIGTERM');
    await s.exited;
  }
});

test('a server whose log reader went away (closed stderr) keeps serving', { timeout: 60_000 }, async () => {
  const p = spawnServe(['serve', '--data-dir', join(tempDir(), 'data'), '--port', '0']);
  const url = await p.ready;
  p.child.stderr!.destroy(); // the reader is gone: the server's next log lines hit EPIPE
  try {
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${url}/v1/repos`);
      assert.equal(r.status, 200);
      await r.arrayBuffer();
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(p.child.exitCode, null, 'the server exited');
  } finally {
    p.child.kill('SIGTERM');
    await p.exited;
  }
});
