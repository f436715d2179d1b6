/**
 * What a clone sees while a new tip builds (issue 7), against a server of our
 * own serving real clonepacks (built by a real server from a real upstream):
 * the mode each clone asks for, the newer-building notice, refusal of a
 * clonepack of a lesser mode, and waiting on a 202 up to --timeout. Every
 * successful clone is compared with `git clone` of the same upstream; every
 * failed one must leave nothing behind.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Manifest } from '../../src/clonepack/manifest.js';
import { pollDelayMs, POLL_MAX_MS, POLL_MIN_MS } from '../../src/client/resolve.js';
import { compareClones } from '../support/compare.js';
import { gitTry, tmpDir } from '../support/git.js';
import { cli, startTestServer, type CliResult } from '../e2e/harness.js';
import { asMode, FreshServer, harvest, makeFreshUpstream, withLevels, type Answer, type Upstream } from './fresh-server.js';

let work: string;
let up: Upstream;
let server: FreshServer;
let main: Manifest; // the real server's manifest of the default branch (full)
let dev: Manifest; // ... and of branch dev
let v2: Manifest; // ... and of tag v2

before(async () => {
  work = tmpDir('snapclone-freshness');
  up = makeFreshUpstream(join(work, 'upstream'));
  const real = await startTestServer(work);
  const artifacts = new Map<string, Buffer>();
  try {
    const add = await fetch(`${real.url}/v1/repos`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: up.url, name: 'demo' }) });
    assert.equal(add.status, 201, await add.text());
    main = await harvest(real.url, 'demo', '', artifacts);
    dev = await harvest(real.url, 'demo', 'dev', artifacts);
    v2 = await harvest(real.url, 'demo', 'v2', artifacts);
  } finally {
    await real.close();
  }
  server = await FreshServer.start();
  for (const [d, b] of artifacts) server.artifacts.set(d, b);
});

after(async () => {
  await server?.close();
});

let n = 0;

/** A fresh parent directory and the clone target in it. */
function target(): { parent: string; dir: string } {
  const parent = join(work, `p${++n}`);
  mkdirSync(parent);
  return { parent, dir: join(parent, 'clone') };
}

function gitClone(flags: string[]): string {
  const dir = join(work, `git-${++n}`);
  const r = gitTry(['clone', '--quiet', ...flags, up.url, dir], { cwd: work });
  assert.equal(r.status, 0, r.stderr.toString());
  return dir;
}

function clone(args: string[]): Promise<CliResult> {
  return cli(server.url, ['clone', 'demo', ...args]);
}

/** Resolve answers 200 with the manifest `pick` returns for the asked mode. */
function serve(pick: (mode: string | null, ref: string | null) => Manifest, extra: Record<string, unknown> = {}): void {
  server.onResolve = (call) => ({ status: 200, body: server.publish(pick(call.mode, call.ref), up.url, extra) });
}

function assertNothingLeft(parent: string): void {
  assert.deepEqual(readdirSync(parent), [], 'a failed clone left something behind');
}

test('each clone mode asks resolve for its mode, and clones what git clone does from that mode\'s manifest', async () => {
  const byMode: Record<string, Manifest> = { shallow: asMode(main, 'shallow'), files: asMode(main, 'files'), full: asMode(main, 'full') };
  const cases: { snap: string[]; git: string[]; mode: string; layout: 'editable' | 'files' }[] = [
    { snap: [], git: [], mode: 'full', layout: 'editable' },
    { snap: ['--depth', '1'], git: ['--depth', '1'], mode: 'shallow', layout: 'editable' },
    { snap: ['--mode', 'files'], git: [], mode: 'files', layout: 'files' },
    { snap: ['--depth', '1', '--mode', 'files'], git: ['--depth', '1'], mode: 'files', layout: 'files' },
  ];
  for (const c of cases) {
    server.resolveCalls.length = 0;
    serve((mode) => byMode[mode ?? 'full'] ?? main);
    const t = target();
    const r = await clone([t.dir, '--quiet', ...c.snap]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(server.resolveCalls, [{ ref: '', mode: c.mode }], `snapclone clone ${c.snap.join(' ')}`);
    assert.deepEqual(compareClones(gitClone(c.git), t.dir, { mode: c.layout }), [], `snapclone clone ${c.snap.join(' ')}`);
  }
});

test('--depth 1 from a shallow manifest holding only the ref and its followed tags, without an archive, is git clone --depth 1', async () => {
  const shallowDev = asMode(dev, 'shallow', { emptyArchive: true });
  assert.deepEqual(shallowDev.refs.map((r) => r.name), ['refs/heads/dev', 'refs/tags/v1'], 'the fixture follows tag v1 on dev');
  const shallowMain = asMode(main, 'shallow');
  assert.deepEqual(shallowMain.refs.map((r) => r.name), ['refs/heads/main', 'refs/tags/light', 'refs/tags/v2']);
  serve((_mode, ref) => (ref === 'dev' ? shallowDev : ref === 'v2' ? asMode(v2, 'shallow') : shallowMain));
  for (const flags of [['--branch', 'dev'], [], ['--branch', 'v2']]) {
    const t = target();
    const r = await clone([t.dir, '--quiet', '--depth', '1', ...flags]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(compareClones(gitClone(['--depth', '1', ...flags]), t.dir, { mode: 'editable' }), [], flags.join(' '));
  }
});

test('a full clone from a manifest whose history is several levels (packs) is git clone', async () => {
  const refs = ['refs/heads/main', 'refs/heads/dev', 'refs/tags/v1', 'refs/tags/v2', 'refs/tags/light'];
  const levels = withLevels(main, up.dir, [[up.commits[0]!], [up.commits[1]!], refs], join(work, 'levels'), server.artifacts);
  assert.equal(levels.historyPacks.length, 3);
  serve(() => levels);
  const t = target();
  const r = await clone([t.dir, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(compareClones(gitClone([]), t.dir, { mode: 'editable' }), []);
  assert.equal(readdirSync(join(t.dir, '.git/objects/pack')).filter((f) => f.endsWith('.pack')).length, 3);
});

test('a newer commit building: one line on stderr, also with --quiet, and "newer" in --json; the clone is the built commit', async () => {
  const newer = { commit: 'ab'.repeat(20), job: 42 };
  serve(() => main, { newer });
  const line = `snapclone: cloned refs/heads/main at ${main.commit!.slice(0, 12)}; the server is still building ${'ab'.repeat(6)}\n`;

  const quiet = target();
  const q = await clone([quiet.dir, '--quiet']);
  assert.equal(q.code, 0, q.stderr);
  assert.equal(q.stderr, line);
  assert.deepEqual(compareClones(gitClone([]), quiet.dir, { mode: 'editable' }), []);

  const loud = target();
  const l = await clone([loud.dir, '--depth', '1', '--json']);
  assert.equal(l.code, 0, l.stderr);
  assert.ok(l.stderr.endsWith(line), l.stderr);
  assert.match(l.stderr, /^Cloning into /);
  assert.deepEqual(JSON.parse(l.stdout).newer, newer);
  assert.equal(JSON.parse(l.stdout).commit, main.commit);
  assert.deepEqual(compareClones(gitClone(['--depth', '1']), loud.dir, { mode: 'editable' }), []);

  // A build whose commit the server does not know yet.
  serve(() => main, { newer: { commit: null, job: null } });
  const unknown = target();
  const u = await clone([unknown.dir, '--quiet', '--json']);
  assert.equal(u.code, 0, u.stderr);
  assert.equal(u.stderr, `snapclone: cloned refs/heads/main at ${main.commit!.slice(0, 12)}; the server is still building a newer commit\n`);
  assert.deepEqual(JSON.parse(u.stdout).newer, { commit: null, job: null });

  // Nothing newer (newer null, or absent as old servers send it): no line, "newer": null.
  for (const extra of [{ newer: null }, { newer: undefined, mode: undefined }]) {
    serve(() => main, extra);
    const t = target();
    const r = await clone([t.dir, '--quiet', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(JSON.parse(r.stdout).newer, null);
  }
});

test('a malformed mode or newer in the resolve answer: invalid (exit 7), nothing left', async () => {
  for (const extra of [{ mode: 'everything' }, { newer: { commit: 'nope', job: 1 } }, { newer: { commit: null, job: -1 } }, { newer: 'soon' }, { newer: { commit: null } }]) {
    serve(() => main, extra);
    const t = target();
    const r = await clone([t.dir, '--quiet']);
    assert.equal(r.code, 7, `${JSON.stringify(extra)}: ${r.stderr}`);
    assert.match(r.stderr, /malformed resolve answer/);
    assertNothingLeft(t.parent);
  }
});

test('a clonepack of a lesser mode than the clone needs is refused (integrity, exit 6), and nothing is left', async () => {
  const cases: { what: string; args: string[]; manifest: Manifest; extra: Record<string, unknown> }[] = [
    { what: 'full asked, shallow answered', args: [], manifest: asMode(main, 'shallow'), extra: {} },
    { what: 'full asked, files manifest, resolve silent on mode', args: [], manifest: asMode(main, 'files'), extra: { mode: undefined } },
    { what: 'files asked, shallow manifest', args: ['--mode', 'files'], manifest: asMode(main, 'shallow'), extra: {} },
    { what: 'files asked, resolve claims files for a shallow manifest', args: ['--mode', 'files'], manifest: asMode(main, 'shallow'), extra: { mode: 'files' } },
  ];
  for (const c of cases) {
    serve(() => c.manifest, c.extra);
    const t = target();
    const r = await clone([t.dir, ...c.args]);
    assert.equal(r.code, 6, `${c.what}: ${r.stderr}`);
    assert.match(r.stderr, /cannot serve a (full|files) clone|does not describe/, c.what);
    assertNothingLeft(t.parent);
  }
});

test('a shallow manifest without an archive while files are converted is refused (integrity), nothing is left, and no download starts again', async () => {
  serve(() => asMode(main, 'shallow', { emptyArchive: true }));
  // HEAD packs still downloading when the clone fails (the table, which it fails on, comes later
  // than they are asked for): closing the client must not retry them.
  const packs = main.headPacks.map((p) => p.pack.digest);
  for (const d of packs) server.slow.set(d, 2000);
  server.slow.set(main.table.digest, 300);
  server.artifactCalls.length = 0;
  const t = target();
  try {
    const r = await clone([t.dir, '--depth', '1']);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /converted files/);
    assertNothingLeft(t.parent);
    for (const d of packs) assert.equal(server.artifactCalls.filter((c) => c === d).length, 1, `a download was retried after the clone had failed: ${JSON.stringify(server.artifactCalls.map((c) => c.slice(0, 8)))} ${d.slice(0, 8)}`);
  } finally {
    server.slow.clear();
  }
});

/** 202 answers: building with `job` and the given retry hint. */
function building(job: unknown, retryAfter = 0.2): Answer {
  return { status: 202, body: { status: 'building', job, retryAfter }, headers: { 'retry-after': '1' } };
}

test('202 while building, then 200 after a few polls: the clone waits with progress lines, then is git clone', async () => {
  server.resolveCalls.length = 0;
  server.jobCalls.length = 0;
  server.onResolve = (call, k) => (k === 1 ? building({ id: 9, state: 'queued', phase: '' }) : { status: 200, body: server.publish(asMode(main, call.mode === 'shallow' ? 'shallow' : 'full'), up.url) });
  server.onJob = (id, k) => ({ status: 200, body: { id, state: k < 4 ? 'running' : 'succeeded', phase: k < 2 ? 'fetching' : 'building shallow', error: null, commit: null } });
  const t = target();
  const r = await clone([t.dir, '--depth', '1']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(server.jobCalls, [9, 9, 9, 9]);
  assert.deepEqual(server.resolveCalls, [{ ref: '', mode: 'shallow' }, { ref: '', mode: 'shallow' }]);
  const waiting = r.stderr.split('\n').filter((l) => l.startsWith('waiting for the server to build'));
  assert.deepEqual(waiting, ['waiting for the server to build demo (shallow): fetching', 'waiting for the server to build demo (shallow): building shallow']);
  assert.deepEqual(compareClones(gitClone(['--depth', '1']), t.dir, { mode: 'editable' }), []);
});

test('202 forever: timeout (exit 11) at --timeout with a clear message, nothing left; a 202 without a job polls resolve itself', async () => {
  server.onJob = (id) => ({ status: 200, body: { id, state: 'running', phase: 'building', error: null, commit: null } });
  for (const job of [{ id: 5, state: 'running', phase: 'building' }, null]) {
    server.resolveCalls.length = 0;
    server.onResolve = () => building(job);
    const t = target();
    const started = Date.now();
    const r = await clone([t.dir, '--timeout', '1', '--branch', 'dev']);
    assert.equal(r.code, 11, r.stderr);
    assert.ok(Date.now() - started >= 1000, 'it waited for the timeout');
    assert.match(r.stderr, /still building demo dev \(full\) after 1 s; try again later or raise --timeout/);
    assertNothingLeft(t.parent);
    if (job === null) assert.ok(server.resolveCalls.length > 1, 'resolve is polled');
  }
});

test('--timeout takes seconds above 0', async () => {
  for (const bad of ['0', '-1', 'soon', '1e3']) {
    const t = target();
    const r = await clone([t.dir, `--timeout=${bad}`]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--timeout takes a number of seconds/);
  }
});

test('the poll pause follows the server hint within bounds', () => {
  assert.equal(pollDelayMs(0.5, undefined), 500);
  assert.equal(pollDelayMs(undefined, '2'), 2000);
  assert.equal(pollDelayMs(1, '3'), 1000, 'the body wins over the header');
  assert.equal(pollDelayMs(0, undefined), POLL_MIN_MS);
  assert.equal(pollDelayMs(3600, undefined), POLL_MAX_MS);
  assert.equal(pollDelayMs(undefined, 'Wed, 21 Oct 2015 07:28:00 GMT'), 300, 'an HTTP date is not a hint we trust');
  assert.equal(pollDelayMs('5', undefined), 300);
});
