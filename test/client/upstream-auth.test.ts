/**
 * The client side of private repositories and rate limiting, against a real
 * snapclone server behind a proxy of our own (faulty-proxy.ts) that plays the
 * access checks of the wire contract (docs/API.md): resolve answers 401 with
 * `upstream` until a `Snapclone-Upstream-Authorization` header comes, 403 for
 * a wrong one, adds `signed` to the resolve answer, and answers 429 with
 * Retry-After when told. The credential comes from a real `git credential`
 * helper (a script configured through a temporary global git config) or from
 * $SNAPCLONE_UPSTREAM_TOKEN; it must reach every server request of the clone
 * and nothing on disk.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import type { RunningServer } from '../../src/serve/server.js';
import { compareClones } from '../support/compare.js';
import { git, gitGlobalConfigPath, gitTry, removeTmpDir, tmpDir } from '../support/git.js';
import { cli, cliOk, startTestServer } from '../e2e/harness.js';
import { FaultyProxy, type Answer } from './faulty-proxy.js';

const UPSTREAM = { protocol: 'https', host: 'git.example.test', path: 'team/demo.git' };
const PASSWORD = 's3cret-Pa55word';
const GOOD = `Basic ${Buffer.from(`u:${PASSWORD}`).toString('base64')}`;
const TOKEN = 'tok-ABCDEF0123456789';
const SIG = 'ab'.repeat(32);

let work: string;
let server: RunningServer;
let proxy: FaultyProxy;
let gitCloneDir: string;
let helperLog: string;
let gitConfig: string;
let n = 0;
/** The header value the "upstream" accepts. */
let accepted = GOOD;

before(async () => {
  work = tmpDir('snapclone-upstream-auth');
  const up = join(work, 'upstream');
  mkdirSync(up);
  git(['init', '-q', '-b', 'main', up], { cwd: work });
  writeFileSync(join(up, 'README.md'), '# private\n');
  writeFileSync(join(up, 'data.txt'), 'x'.repeat(100_000));
  git(['add', '-A'], { cwd: up, date: 1_600_000_000 });
  git(['commit', '-q', '-m', 'first'], { cwd: up, date: 1_600_000_000 });
  server = await startTestServer(work);
  await cliOk(server.url, ['add', `file://${up}`, '--name', 'demo', '--quiet']);
  proxy = await FaultyProxy.start(server.url);
  gitCloneDir = join(work, 'git-clone');
  assert.equal(gitTry(['clone', '--quiet', `file://${up}`, gitCloneDir], { cwd: work }).status, 0);
  // A real credential helper: it logs the action git runs it for (never what it is given) and answers `get`.
  helperLog = join(work, 'helper.log');
  const helper = join(work, 'helper.sh');
  writeFileSync(helper, `#!/bin/sh\necho "$1" >> '${helperLog}'\nif [ "$1" = get ]; then echo username=u; echo password=${PASSWORD}; fi\nexit 0\n`);
  chmodSync(helper, 0o755);
  gitConfig = join(work, 'gitconfig');
  // The hermetic global config (the identity git clone writes in reflogs) plus the helper.
  writeFileSync(gitConfig, `${readFileSync(gitGlobalConfigPath(), 'utf8')}[credential]\n\thelper = ${helper}\n`);
});

after(async () => {
  await proxy?.close();
  await server?.close();
  if (work) removeTmpDir(work);
});

function signedQuery(digest: string): string {
  return `m=${digest}&exp=${Date.now() + 3_600_000}&sig=${SIG}`;
}

/** The proxy as a server would be for a private repository (and the given 429s). */
function playPrivate(opts: { rateLimited?: (n: number) => Answer | null } = {}): void {
  proxy.seen.length = 0;
  proxy.faults = 0;
  proxy.fault = null;
  let resolves = 0;
  proxy.intercept = (req: IncomingMessage, path: string) => {
    if (path.endsWith('/resolve')) {
      const limited = opts.rateLimited?.(++resolves);
      if (limited) return limited;
    }
    const auth = req.headers['snapclone-upstream-authorization'];
    const reading = path.startsWith('/v1/repos/') || path.startsWith('/v1/jobs/');
    if (!reading && !path.startsWith('/v1/artifacts/')) return null;
    if (auth === undefined && reading)
      return { status: 401, body: { code: 'unauthorized', error: 'demo is private: present a credential of its upstream', upstream: UPSTREAM }, headers: { 'www-authenticate': `Snapclone-Upstream realm="${UPSTREAM.host}"` } };
    if (auth !== undefined && auth !== accepted) return { status: 403, body: { code: 'unauthorized', error: 'the upstream refused the credential', upstream: UPSTREAM } };
    if (path.startsWith('/v1/artifacts/') && !new URL(req.url!, 'http://x').search.includes(`sig=${SIG}`))
      return { status: 403, body: { code: 'unauthorized', error: 'artifacts of private repositories need a signed URL: resolve first' } };
    return null;
  };
  proxy.rewriteResolve = (j) => ({ ...j, signed: { query: signedQuery((j.manifest as { digest: string }).digest), expiresAt: Date.now() + 3_600_000 } });
}

async function cloneIt(env: Record<string, string> = {}, args: string[] = []): Promise<{ code: number; stdout: string; stderr: string; dir: string; parent: string }> {
  const parent = join(work, `clone-${++n}`);
  mkdirSync(parent);
  const dir = join(parent, 'demo');
  writeFileSync(helperLog, '');
  const r = await cli(proxy.url, ['clone', 'demo', dir, '--quiet', ...args], { env: { GIT_CONFIG_GLOBAL: gitConfig, ...env } });
  return { ...r, dir, parent };
}

/** Every file under `dir` (the .git too) as bytes. */
function everyFile(dir: string): Buffer[] {
  const out: Buffer[] = [];
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[]) {
    if (e.isFile()) out.push(readFileSync(join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)));
  }
  return out;
}

function assertNoSecret(dir: string, secrets: string[]): void {
  for (const f of everyFile(dir)) for (const s of secrets) assert.ok(!f.includes(s), `a clone file holds ${s.slice(0, 6)}…`);
}

test('a 401 naming the upstream: the git credential helper is asked, the credential goes with every request and signed query with every artifact GET; approved; nothing of it on disk', async () => {
  accepted = GOOD;
  playPrivate();
  const r = await cloneIt();
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(compareClones(gitCloneDir, r.dir, { mode: 'editable' }), []);
  const [first, ...rest] = proxy.seen;
  assert.equal(first!.upstreamAuth, undefined, 'the first request carries no credential');
  assert.equal(first!.status, 401);
  assert.ok(rest.length >= 3);
  for (const s of rest) assert.equal(s.upstreamAuth, GOOD, `${s.method} ${s.path} without the credential`);
  const manifest = proxy.seen.find((s) => s.path.endsWith('/resolve') && s.status === 200);
  assert.ok(manifest);
  const gets = proxy.artifactGets();
  assert.ok(gets.length >= 3);
  const queries = new Set(gets.map((g) => g.query));
  assert.equal(queries.size, 1, 'one signed query for the whole clone');
  assert.match([...queries][0]!, new RegExp(`^m=[0-9a-f]{64}&exp=\\d+&sig=${SIG}$`));
  assert.deepEqual(readFileSync(helperLog, 'utf8').split('\n').filter(Boolean), ['get', 'store'], 'the helper was asked, then told it worked');
  assertNoSecret(r.dir, [PASSWORD, GOOD.slice(6), 'Snapclone-Upstream']);
  assert.ok(!r.stderr.includes(PASSWORD));
  assert.equal(gitTry(['config', '--get-regexp', '.'], { cwd: r.dir }).stdout.toString().includes(PASSWORD), false);
});

test('a credential the upstream refuses (403): exit 10, the helper is told to reject it, nothing left', async () => {
  accepted = 'Basic bm90OnRoaXM=';
  playPrivate();
  const r = await cloneIt();
  assert.equal(r.code, 10, r.stderr);
  assert.match(r.stderr, /^snapclone: the upstream refused the credential \(the credential from git credential for https:\/\/git\.example\.test\/team\/demo\.git was refused\)\n$/);
  assert.ok(!r.stderr.includes(PASSWORD));
  assert.deepEqual(readFileSync(helperLog, 'utf8').split('\n').filter(Boolean), ['get', 'erase']);
  assert.deepEqual(proxy.seen.map((s) => s.status), [401, 403], 'asked once, retried once');
  assert.equal(existsSync(r.dir), false);
  assert.deepEqual(readdirSync(r.parent), []);
});

test('$SNAPCLONE_UPSTREAM_TOKEN is sent as a bearer credential; git helpers are not asked', async () => {
  accepted = `Bearer ${TOKEN}`;
  playPrivate();
  const r = await cloneIt({ SNAPCLONE_UPSTREAM_TOKEN: TOKEN });
  assert.equal(r.code, 0, r.stderr);
  for (const s of proxy.seen.slice(1)) assert.equal(s.upstreamAuth, `Bearer ${TOKEN}`);
  assert.equal(readFileSync(helperLog, 'utf8'), '', 'a git helper was asked');
  assertNoSecret(r.dir, [TOKEN]);
  assert.deepEqual(compareClones(gitCloneDir, r.dir, { mode: 'editable' }), []);
});

test('no credential anywhere and no terminal: exit 10 at once with what to set, git never prompts', async () => {
  accepted = GOOD;
  playPrivate();
  // No helper; prompts allowed as far as the environment says, no askpass: only snapclone's no-TTY rule keeps git from asking.
  const empty = join(work, 'empty-gitconfig');
  writeFileSync(empty, readFileSync(gitGlobalConfigPath(), 'utf8'));
  const r = await cloneIt({ GIT_CONFIG_GLOBAL: empty, GIT_TERMINAL_PROMPT: '1', GIT_ASKPASS: '', SSH_ASKPASS: '' });
  assert.equal(r.code, 10, r.stderr);
  assert.match(r.stderr, /no credential for https:\/\/git\.example\.test\/team\/demo\.git: set \$SNAPCLONE_UPSTREAM_TOKEN or configure a git credential helper for git\.example\.test/);
  assert.deepEqual(readdirSync(r.parent), []);
});

test('a report of a bad artifact carries the signed query too', async () => {
  accepted = GOOD;
  playPrivate();
  proxy.fault = { kind: 'flip', afterBytes: 10, times: 1, minSize: 1000 };
  const r = await cloneIt();
  assert.equal(r.code, 6, r.stderr);
  const report = proxy.seen.find((s) => s.method === 'POST' && s.path.endsWith('/report'));
  assert.ok(report, 'no report');
  assert.match(report.query, new RegExp(`^m=[0-9a-f]{64}&exp=\\d+&sig=${SIG}$`));
  assert.equal(report.upstreamAuth, GOOD);
  assert.deepEqual(readdirSync(r.parent), []);
});

test('a malformed signed query is refused before anything is fetched (exit 7)', async () => {
  accepted = GOOD;
  for (const signed of [{ query: 'm=1&exp=2&sig=3', expiresAt: 1 }, { query: `m=${'a'.repeat(64)}&exp=1&sig=${SIG}&x=1`, expiresAt: 1 }, { query: `m=${'a'.repeat(64)}&exp=1&sig=${SIG}`, expiresAt: 1 }, 'm=', { query: 'x', expiresAt: 1, extra: 1 }]) {
    playPrivate();
    proxy.rewriteResolve = (j) => ({ ...j, signed });
    const r = await cloneIt();
    assert.equal(r.code, 7, `${JSON.stringify(signed)}: ${r.stderr}`);
    assert.match(r.stderr, /malformed resolve answer \(signed: /);
    assert.equal(proxy.artifactGets().length, 0, 'an artifact was fetched');
  }
});

test('429 on resolve: the client waits Retry-After and tries again; the clone is git clone', async () => {
  accepted = GOOD;
  playPrivate({ rateLimited: (k) => (k <= 2 ? { status: 429, body: { code: 'rate-limited', error: 'too many requests' }, headers: { 'retry-after': '1' } } : null) });
  const r = await cloneIt({}, ['--json']);
  assert.equal(r.code, 0, r.stderr);
  const resolves = proxy.seen.filter((s) => s.path.endsWith('/resolve'));
  assert.deepEqual(resolves.slice(0, 3).map((s) => s.status), [429, 429, 401]);
  // Retry-After is a floor, not a speed: each retry came at least ~1 s after the 429.
  assert.ok(resolves[1]!.at - resolves[0]!.at >= 900 && resolves[2]!.at - resolves[1]!.at >= 900, 'Retry-After was not waited');
  assert.equal(JSON.parse(r.stdout).retries.rateLimited, 2);
  assert.deepEqual(compareClones(gitCloneDir, r.dir, { mode: 'editable' }), []);
});

test('429 on every try: 5 retries, then exit 15 with the server\'s message', async () => {
  playPrivate({ rateLimited: () => ({ status: 429, body: { code: 'rate-limited', error: 'too many requests from 127.0.0.1' }, headers: { 'retry-after': '0' } }) });
  const r = await cloneIt();
  assert.equal(r.code, 15, r.stderr);
  assert.equal(r.stderr, 'snapclone: too many requests from 127.0.0.1\n');
  assert.equal(proxy.seen.filter((s) => s.path.endsWith('/resolve')).length, 6);
  assert.deepEqual(readdirSync(r.parent), []);
});

test('429 with a Retry-After beyond --timeout: no wait, exit 15 at once', async () => {
  playPrivate({ rateLimited: () => ({ status: 429, body: { code: 'rate-limited', error: 'too many requests' }, headers: { 'retry-after': '20' } }) });
  const r = await cloneIt({}, ['--timeout', '5']);
  assert.equal(r.code, 15, r.stderr);
  assert.equal(proxy.seen.filter((s) => s.path.endsWith('/resolve')).length, 1);
});
