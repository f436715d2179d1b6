/**
 * Downloads that break mid-body against a real `snapclone serve` process,
 * through a proxy of our own (faulty-proxy.ts) that cuts, resets or stalls
 * artifact bodies after N bytes, or while the server is killed and restarted:
 * the clone resumes with `Range: bytes=<received>-` and ends up identical to
 * `git clone`; a body that never recovers fails cleanly (exit 4, nothing left).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { compareClones } from '../support/compare.js';
import { randomBytes } from '../support/fixtures.js';
import { git, gitTry, removeTmpDir, tmpDir } from '../support/git.js';
import { spawnServe, runCli, type ServeProcess } from '../serve/process-helpers.js';
import { cli } from '../e2e/harness.js';
import { FaultyProxy } from './faulty-proxy.js';

/** The file big enough that its pack and archive chunk break mid-body. */
const BIG = 1_500_000;
/** Where bodies break. */
const AT = 300_000;

let work: string;
let dataDir: string;
let server: ServeProcess;
let serverUrl: string;
let proxy: FaultyProxy;
let gitCloneDir: string;
let n = 0;

async function startServe(port: number): Promise<void> {
  server = spawnServe(['serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir, '--poll-seconds', '0'], { env: { SNAPCLONE_LOG: 'info' } });
  serverUrl = await server.ready;
}

before(async () => {
  work = tmpDir('snapclone-resume');
  const up = join(work, 'upstream');
  mkdirSync(join(up, 'src'), { recursive: true });
  git(['init', '-q', '-b', 'main', up], { cwd: work });
  writeFileSync(join(up, 'big.bin'), randomBytes(BIG, 7)); // incompressible: the pack and the archive are ~1.5 MB each
  writeFileSync(join(up, 'src', 'a.txt'), 'alpha\n'.repeat(100));
  git(['add', '-A'], { cwd: up, date: 1_600_000_000 });
  git(['commit', '-q', '-m', 'first'], { cwd: up, date: 1_600_000_000 });
  writeFileSync(join(up, 'src', 'a.txt'), 'beta\n'.repeat(100));
  git(['commit', '-q', '-am', 'second'], { cwd: up, date: 1_600_000_100 });
  dataDir = join(work, 'data');
  await startServe(0);
  proxy = await FaultyProxy.start(serverUrl);
  const r = await runCli(['add', `file://${up}`, '--name', 'big', '--quiet', '--server', serverUrl]);
  assert.equal(r.code, 0, r.stderr);
  gitCloneDir = join(work, 'git-clone');
  const g = gitTry(['clone', '--quiet', `file://${up}`, gitCloneDir], { cwd: work });
  assert.equal(g.status, 0, g.stderr.toString());
});

after(async () => {
  await proxy?.close();
  server?.child.kill('SIGKILL');
  await server?.exited;
  if (work) removeTmpDir(work);
});

function reset(): void {
  proxy.seen.length = 0;
  proxy.faults = 0;
  proxy.fault = null;
  proxy.onFault = null;
  proxy.intercept = () => null;
}

async function cloneThroughProxy(env: Record<string, string> = {}): Promise<{ code: number; stderr: string; json: any; dir: string; parent: string }> {
  const parent = join(work, `clone-${++n}`);
  mkdirSync(parent);
  const dir = join(parent, 'big');
  const r = await cli(proxy.url, ['clone', 'big', dir, '--quiet', '--json'], { env });
  let json: any = null;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    /* a failed clone prints no result */
  }
  return { code: r.code, stderr: r.stderr, json, dir, parent };
}

/** The digest of the artifact the fault hit, and every GET of it, in order. */
function faultedArtifact(): { digest: string; gets: typeof proxy.seen } {
  const hit = proxy.seen.find((s) => s.faulted);
  assert.ok(hit, 'no artifact answer was faulted');
  const digest = hit.path.slice('/v1/artifacts/'.length);
  return { digest, gets: proxy.artifactGets(digest) };
}

for (const kind of ['cut', 'reset', 'stall'] as const) {
  test(`an artifact body ${kind === 'cut' ? 'cut off' : kind === 'reset' ? 'reset (TCP RST)' : 'stalled'} after ${AT} bytes resumes from the received offset; the clone is git clone`, async () => {
    reset();
    proxy.fault = { kind, afterBytes: AT, times: 1, minSize: BIG / 2 };
    const r = await cloneThroughProxy({ SNAPCLONE_STALL_TIMEOUT_MS: '500' });
    assert.equal(r.code, 0, r.stderr);
    const { gets } = faultedArtifact();
    assert.equal(gets.length, 2, `GETs of the faulted artifact: ${JSON.stringify(gets)}`);
    assert.equal(gets[0]!.range, undefined, 'the first GET asks for the whole artifact');
    const m = /^bytes=(\d+)-$/.exec(gets[1]!.range ?? '');
    assert.ok(m, `the retry asks for a range: ${gets[1]!.range}`);
    const from = Number(m[1]);
    // A reset may drop bytes the client's kernel had not handed over yet: never more than were sent.
    if (kind === 'reset') assert.ok(from > 0 && from <= AT, `resumed from ${from}`);
    else assert.equal(from, AT);
    assert.equal(gets[1]!.status, 206);
    assert.equal(r.json.retries.resumed, 1);
    assert.equal(r.json.retries.resumedBytes, from);
    assert.equal(r.json.retries.restarts, 0);
    assert.deepEqual(compareClones(gitCloneDir, r.dir, { mode: 'editable' }), []);
  });
}

test('a body cut three times resumes three times, each from where the last one broke off', async () => {
  // The largest artifact (a clone's answers say how much each sent): big enough for three cuts AT apart.
  reset();
  assert.equal((await cloneThroughProxy()).code, 0);
  const largest = proxy.artifactGets().reduce((a, g) => (g.sent > a.sent ? g : a));
  assert.ok(largest.sent > 3 * AT, `the largest artifact has ${largest.sent} bytes`);
  reset();
  proxy.fault = { kind: 'cut', afterBytes: AT, times: 3, digest: largest.path.slice('/v1/artifacts/'.length) };
  const r = await cloneThroughProxy();
  assert.equal(r.code, 0, r.stderr);
  const { gets } = faultedArtifact();
  assert.deepEqual(
    gets.map((g) => g.range),
    [undefined, `bytes=${AT}-`, `bytes=${2 * AT}-`, `bytes=${3 * AT}-`],
  );
  assert.equal(r.json.retries.resumedBytes, AT + 2 * AT + 3 * AT);
  assert.deepEqual(compareClones(gitCloneDir, r.dir, { mode: 'editable' }), []);
});

test('the server killed mid-body and restarted: the clone waits with backoff, resumes from the offset, and is git clone', async () => {
  reset();
  const port = Number(new URL(serverUrl).port);
  proxy.fault = { kind: 'pause', afterBytes: AT, times: 1, minSize: BIG / 2 };
  let restarted: Promise<void> | null = null;
  proxy.onFault = (breakConnection) => {
    restarted = (async () => {
      server.child.kill('SIGKILL');
      await server.exited;
      breakConnection(); // the proxy may hold bytes the server wrote before it died: they never reach the client

      await startServe(port);
    })();
  };
  const r = await cloneThroughProxy();
  await restarted;
  assert.equal(r.code, 0, `${r.stderr} ${JSON.stringify(proxy.seen)}`);
  const { gets } = faultedArtifact();
  const ranges = gets.map((g) => g.range);
  assert.equal(ranges[0], undefined);
  // Attempts while the server was down reached nobody (-1); the one that did resumed at the offset.
  const answered = gets.filter((g) => g.status === 206);
  assert.equal(answered.length, 1, `${JSON.stringify(gets)}\n${r.stderr}`);
  assert.equal(answered[0]!.range, `bytes=${AT}-`);
  assert.ok(gets.slice(1).every((g) => g.range === `bytes=${AT}-`), JSON.stringify(ranges));
  assert.equal(r.json.retries.resumedBytes, AT);
  // Other downloads in flight broke with the server too; each retried.
  assert.ok(r.json.retries.attempts >= gets.length - 1);
  assert.deepEqual(compareClones(gitCloneDir, r.dir, { mode: 'editable' }), []);
});

test('an artifact GET that gets no answer within the first-byte limit is asked again; the clone is git clone', async () => {
  reset();
  const held = new Set<string>();
  // The first GET of each artifact gets nothing at all: not even headers.
  proxy.intercept = (req, path) => {
    if (req.method !== 'GET' || !path.startsWith('/v1/artifacts/') || held.has(path)) return null;
    held.add(path);
    return 'hold';
  };
  const r = await cloneThroughProxy({ SNAPCLONE_FIRST_BYTE_TIMEOUT_MS: '300' });
  assert.equal(r.code, 0, r.stderr);
  for (const path of held) assert.equal(proxy.artifactGets(path.slice('/v1/artifacts/'.length)).length, 2, path);
  assert.equal(r.json.retries.attempts, held.size);
  assert.equal(r.json.retries.resumed, 0, 'nothing had arrived to resume from');
  assert.deepEqual(compareClones(gitCloneDir, r.dir, { mode: 'editable' }), []);
});

test('a body that stalls on every attempt fails after 5 attempts with exit 4 and leaves nothing', async () => {
  reset();
  proxy.fault = { kind: 'stall', afterBytes: 0, times: Infinity, minSize: BIG / 2 };
  const r = await cloneThroughProxy({ SNAPCLONE_STALL_TIMEOUT_MS: '300' });
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /^snapclone: download of [0-9a-f]{12} stalled: no data for 300 ms\n$/);
  const { gets } = faultedArtifact();
  assert.equal(gets.length, 5);
  assert.deepEqual(readdirSync(r.parent), [], 'the failed clone left something');
});

test('wrong bytes mid-body are an integrity failure (exit 6): reported, never resumed or retried', async () => {
  reset();
  proxy.fault = { kind: 'flip', afterBytes: AT, times: 1, minSize: BIG / 2 };
  const r = await cloneThroughProxy();
  assert.equal(r.code, 6, r.stderr);
  const { digest, gets } = faultedArtifact();
  assert.equal(gets.length, 1, 'wrong bytes were fetched again');
  assert.ok(proxy.seen.some((s) => s.method === 'POST' && s.path === `/v1/artifacts/${digest}/report`), 'not reported');
  assert.equal(existsSync(r.dir), false);
  assert.deepEqual(readdirSync(r.parent), []);
});

test('a timeout variable that is not a number of ms is a usage error (exit 2)', async () => {
  const r = await cli(proxy.url, ['clone', 'big', join(work, 'never')], { env: { SNAPCLONE_STALL_TIMEOUT_MS: 'soon' } });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /SNAPCLONE_STALL_TIMEOUT_MS must be a number of milliseconds/);
});

test('a disk that fills up during the clone (2 MiB tmpfs): exit 13 naming the full disk, nothing left behind', async (t) => {
  reset();
  const mnt = join(work, 'small-disk');
  mkdirSync(mnt);
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt], { encoding: 'utf8' });
  if (m.status !== 0) return t.skip(`cannot mount a tmpfs here (${(m.stderr || m.error?.message || '').trim()}); needs root`);
  try {
    const dir = join(mnt, 'big');
    const r = await cli(proxy.url, ['clone', 'big', dir, '--quiet']);
    assert.equal(r.code, 13, r.stderr);
    assert.match(r.stderr, /^snapclone: cannot write .*: no space left on device \(ENOSPC\)\n$/);
    assert.ok(r.stderr.includes(mnt), `the message names where: ${r.stderr}`);
    assert.deepEqual(readdirSync(mnt), [], 'the failed clone left something on the full disk');
  } finally {
    spawnSync('umount', [mnt]);
  }
});
