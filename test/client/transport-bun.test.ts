/**
 * The Bun path for real: clones through the launcher (bin/snapclone, on Bun
 * when npm ci installed it) take the fetch transport (transport-fetch.ts) and
 * Bun's zstd, against a real `snapclone serve` behind faulty-proxy.ts: a body
 * cut mid-way resumes with a Range and the clone is git clone's, a flipped
 * byte is an integrity failure (exit 6), a 429's Retry-After is waited out,
 * and a body that stalls on every try fails with exit 4. Skipped when the
 * launcher runs on Node (no Bun installed).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compareClones } from '../support/compare.js';
import { randomBytes } from '../support/fixtures.js';
import { git, gitText, gitTry, hermeticEnv, removeTmpDir, tmpDir } from '../support/git.js';
import { spawnServe, runCli, type ServeProcess } from '../serve/process-helpers.js';
import { FaultyProxy } from './faulty-proxy.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const LAUNCHER = join(ROOT, 'bin/snapclone');
const onBun = existsSync(LAUNCHER) && !readFileSync(LAUNCHER, 'utf8').startsWith('#!/usr/bin/env node');
const skip = onBun ? false : 'bin/snapclone runs on Node here (no Bun installed, or not built)';

/** Big enough that its pack and archive chunk break mid-body. */
const BIG = 1_500_000;
const AT = 300_000;

let work: string;
let server: ServeProcess;
let proxy: FaultyProxy;
let gitCloneDir: string;
let shallowDir: string;
let n = 0;
/** User-Agent of every artifact GET (Bun's fetch names itself; node:http sends none). */
let agents: (string | undefined)[] = [];

before(async () => {
  if (!onBun) return;
  work = tmpDir('snapclone-transport-bun');
  const up = join(work, 'upstream');
  mkdirSync(join(up, 'src'), { recursive: true });
  git(['init', '-q', '-b', 'main', up], { cwd: work });
  writeFileSync(join(up, 'big.bin'), randomBytes(BIG, 11)); // incompressible: pack and archive chunk ~1.5 MB each
  writeFileSync(join(up, 'src', 'a.txt'), 'alpha\n'.repeat(100));
  git(['add', '-A'], { cwd: up, date: 1_600_000_000 });
  git(['commit', '-q', '-m', 'first'], { cwd: up, date: 1_600_000_000 });
  server = spawnServe(['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', join(work, 'data'), '--poll-seconds', '0']);
  proxy = await FaultyProxy.start(await server.ready);
  const r = await runCli(['add', `file://${up}`, '--name', 'big', '--quiet', '--server', proxy.url]);
  assert.equal(r.code, 0, r.stderr);
  gitCloneDir = join(work, 'git-clone');
  assert.equal(gitTry(['clone', '--quiet', `file://${up}`, gitCloneDir], { cwd: work }).status, 0);
  shallowDir = join(work, 'git-shallow');
  assert.equal(gitTry(['clone', '--quiet', '--depth', '1', `file://${up}`, shallowDir], { cwd: work }).status, 0);
});

after(async () => {
  await proxy?.close();
  server?.child.kill('SIGKILL');
  await server?.exited;
  if (work) removeTmpDir(work);
});

function reset(intercept: FaultyProxy['intercept'] = () => null): void {
  proxy.seen.length = 0;
  proxy.faults = 0;
  proxy.fault = null;
  agents = [];
  proxy.intercept = (req, path) => {
    if (path.startsWith('/v1/artifacts/') && req.method === 'GET') agents.push(req.headers['user-agent']);
    return intercept(req, path);
  };
}

function clone(flags: string[] = [], env: Record<string, string> = {}): Promise<{ code: number; stderr: string; json: any; dir: string; parent: string }> {
  const parent = join(work, `clone-${++n}`);
  mkdirSync(parent);
  const dir = join(parent, 'big');
  return new Promise((resolve) => {
    execFile(LAUNCHER, ['clone', 'big', dir, '--quiet', '--json', ...flags], { env: { ...hermeticEnv(), SNAPCLONE_SERVER: proxy.url, ...env }, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      let json: any = null;
      try {
        json = JSON.parse(String(stdout));
      } catch {
        /* a failed clone prints no result */
      }
      resolve({ code, stderr: String(stderr), json, dir, parent });
    });
  });
}

function faulted(): { digest: string; gets: FaultyProxy['seen'] } {
  const hit = proxy.seen.find((s) => s.faulted);
  assert.ok(hit, 'no artifact answer was faulted');
  const digest = hit.path.slice('/v1/artifacts/'.length);
  return { digest, gets: proxy.artifactGets(digest) };
}

function assertFetchTransport(): void {
  assert.ok(agents.length > 0, 'no artifact was fetched');
  for (const a of agents) assert.match(a ?? '', /^Bun\//, 'an artifact GET did not go through Bun\'s fetch');
}

test('under Bun, every mode clones through fetch and Bun\'s zstd, and equals git clone', { skip }, async () => {
  for (const [flags, mode, ref] of [[[], 'editable', () => gitCloneDir], [['--depth', '1'], 'editable', () => shallowDir], [['--mode', 'files'], 'files', () => gitCloneDir]] as const) {
    reset();
    const r = await clone([...flags]);
    assert.equal(r.code, 0, r.stderr);
    assertFetchTransport();
    assert.deepEqual(compareClones(ref(), r.dir, { mode }), [], flags.join(' '));
    if (mode === 'editable') {
      assert.equal(gitText(['status', '--porcelain'], { cwd: r.dir }), '');
      assert.equal(gitTry(['fsck', '--full', '--strict'], { cwd: r.dir }).status, 0);
    }
  }
});

for (const kind of ['cut', 'reset'] as const) {
  // The proxy counts bytes as its socket took them; what the client had not read yet when the connection broke can be
  // lost with it (a reset drops the receive queue), so the resume point is at most AT, and after a reset may be 0
  // (the whole artifact asked again, no Range).
  test(`under Bun, a body ${kind === 'cut' ? 'cut off' : 'reset'} after ${AT} bytes resumes with a Range from the bytes received; the clone is git clone`, { skip }, async () => {
    reset();
    proxy.fault = { kind, afterBytes: AT, times: 1, minSize: BIG / 2 };
    const r = await clone();
    assert.equal(r.code, 0, r.stderr);
    assertFetchTransport();
    const { gets } = faulted();
    assert.equal(gets.length, 2);
    assert.equal(gets[0]!.range, undefined);
    const from = gets[1]!.range === undefined ? 0 : Number(/^bytes=(\d+)-$/.exec(gets[1]!.range)?.[1]);
    assert.ok(from <= AT, `the second GET asks for ${gets[1]!.range}`);
    if (kind === 'cut') assert.ok(from > 0, 'a clean cut keeps what arrived: the second GET asks for the rest only');
    assert.equal(gets[1]!.status, from > 0 ? 206 : 200);
    assert.equal(r.json.retries.resumed, from > 0 ? 1 : 0);
    assert.deepEqual(compareClones(gitCloneDir, r.dir, { mode: 'editable' }), []);
    assert.equal(gitTry(['fsck', '--full', '--strict'], { cwd: r.dir }).status, 0);
  });
}

test('under Bun, a flipped byte mid-body is an integrity failure (exit 6): reported, never fetched again, nothing left', { skip }, async () => {
  reset();
  proxy.fault = { kind: 'flip', afterBytes: AT, times: 1, minSize: BIG / 2 };
  const r = await clone();
  assert.equal(r.code, 6, r.stderr);
  assertFetchTransport();
  const { digest, gets } = faulted();
  assert.equal(gets.length, 1, 'wrong bytes were fetched again');
  assert.ok(proxy.seen.some((s) => s.method === 'POST' && s.path === `/v1/artifacts/${digest}/report`), 'not reported');
  assert.deepEqual(readdirSync(r.parent), []);
});

test('under Bun, a 429 on resolve and on an artifact: each Retry-After is waited out, then the clone is git clone', { skip }, async () => {
  let resolves = 0;
  let artifact: string | null = null;
  reset((req, path) => {
    if (path.endsWith('/resolve') && ++resolves === 1) return { status: 429, body: { code: 'rate-limited', error: 'slow down' }, headers: { 'retry-after': '1' } };
    if (req.method === 'GET' && path.startsWith('/v1/artifacts/') && artifact === null) {
      artifact = path;
      return { status: 429, body: { code: 'rate-limited', error: 'slow down' }, headers: { 'retry-after': '1' } };
    }
    return null;
  });
  const r = await clone();
  assert.equal(r.code, 0, r.stderr);
  const rs = proxy.seen.filter((s) => s.path.endsWith('/resolve'));
  assert.deepEqual(rs.slice(0, 2).map((s) => s.status), [429, 200]);
  assert.ok(rs[1]!.at - rs[0]!.at >= 900, 'resolve was asked again before its Retry-After');
  const gets = proxy.seen.filter((s) => s.path === artifact);
  assert.deepEqual(gets.map((s) => s.status), [429, 200]);
  assert.ok(gets[1]!.at - gets[0]!.at >= 900, 'the artifact was asked again before its Retry-After');
  assert.deepEqual(compareClones(gitCloneDir, r.dir, { mode: 'editable' }), []);
});

test('under Bun, an artifact GET with no answer within the first-byte limit is asked again; the clone is git clone', { skip }, async () => {
  const held = new Set<string>();
  // The first GET of each artifact gets nothing at all: not even headers.
  reset((req, path) => {
    if (req.method !== 'GET' || !path.startsWith('/v1/artifacts/') || held.has(path)) return null;
    held.add(path);
    return 'hold';
  });
  const r = await clone([], { SNAPCLONE_FIRST_BYTE_TIMEOUT_MS: '300' });
  assert.equal(r.code, 0, r.stderr);
  for (const path of held) assert.equal(proxy.artifactGets(path.slice('/v1/artifacts/'.length)).length, 2, path);
  assert.equal(r.json.retries.attempts, held.size);
  assert.deepEqual(compareClones(gitCloneDir, r.dir, { mode: 'editable' }), []);
});

test('under Bun, a body that stalls on every try fails after 5 attempts with exit 4 and leaves nothing', { skip }, async () => {
  reset();
  proxy.fault = { kind: 'stall', afterBytes: 0, times: Infinity, minSize: BIG / 2 };
  const r = await clone([], { SNAPCLONE_STALL_TIMEOUT_MS: '300' });
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /^snapclone: download of [0-9a-f]{12} stalled: no data for 300 ms\n$/);
  assert.equal(faulted().gets.length, 5);
  assert.deepEqual(readdirSync(r.parent), [], 'the failed clone left something');
});

test('under Bun, SIGINT while a download hangs removes the partial clone and exits 130', { skip }, async () => {
  reset();
  proxy.fault = { kind: 'stall', afterBytes: AT, times: Infinity, minSize: BIG / 2 };
  const parent = join(work, `clone-${++n}`);
  mkdirSync(parent);
  const child = spawn(LAUNCHER, ['clone', 'big', join(parent, 'big'), '--quiet'], { env: { ...hermeticEnv(), SNAPCLONE_SERVER: proxy.url }, stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  // The fault has happened: the body hangs mid-way, the clone has its staging directory.
  while (proxy.faults === 0) await new Promise((r) => setTimeout(r, 20));
  child.kill('SIGINT');
  assert.equal(await exited, 130);
  assert.deepEqual(readdirSync(parent), [], 'the interrupted clone left something');
});
