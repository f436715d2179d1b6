/**
 * The repository commands of the real CLI (a subprocess) against a small
 * server of our own that speaks the endpoints of CONTRACTS.md: list, remove,
 * set-url, and failed jobs that carry an errorCode (sync, add, set-url). The
 * requests the CLI sends (method, path, token, body) are checked, and its
 * output and exit codes. End-to-end tests against the real server's endpoints
 * live with the server's tests.
 */
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';

const BIN = fileURLToPath(new URL('../../../bin/snapclone.js', import.meta.url));

interface Seen {
  method: string;
  path: string;
  auth: string | undefined;
  body: unknown;
}
type Answer = { status: number; body: unknown };

let http: Server;
let url = '';
let seen: Seen[] = [];
/** Answers by "METHOD path"; jobs by id, answered in turn (the last one repeats). */
let routes = new Map<string, Answer>();
let jobs = new Map<number, unknown[]>();

before(async () => {
  http = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => {
      const path = req.url ?? '/';
      seen.push({ method: req.method ?? '', path, auth: req.headers.authorization, body: text ? JSON.parse(text) : undefined });
      const job = /^\/v1\/jobs\/(\d+)$/.exec(path);
      let answer: Answer = routes.get(`${req.method} ${path}`) ?? { status: 404, body: { error: `no route ${req.method} ${path}`, code: 'not-found' } };
      if (job && jobs.has(Number(job[1]))) {
        const states = jobs.get(Number(job[1]))!;
        answer = { status: 200, body: states.length > 1 ? states.shift() : states[0] };
      }
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});
after(async () => {
  http.closeAllConnections();
  await new Promise((r) => http.close(r));
});
beforeEach(() => {
  seen = [];
  routes = new Map();
  jobs = new Map();
});

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args, '--server', url], { env: { PATH: process.env.PATH ?? '', ...env } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const job = (id: number, state: string, extra: Record<string, unknown> = {}) => ({ id, state, phase: state === 'running' ? 'fetching' : '', error: null, commit: null, ...extra });

test('list: one line per repository, or JSON', async () => {
  const repos = [
    { name: 'acme/app', url: 'https://example.invalid/acme/app.git', defaultBranch: 'main' },
    { name: 'x', url: '/srv/git/x', defaultBranch: null },
  ];
  routes.set('GET /v1/repos', { status: 200, body: { repos } });
  const human = await run(['list']);
  assert.equal(human.code, 0, human.stderr);
  assert.equal(human.stdout, 'acme/app  https://example.invalid/acme/app.git  (main)\nx         /srv/git/x\n');
  const json = await run(['list', '--json']);
  assert.deepEqual(JSON.parse(json.stdout), { repos });
  routes.set('GET /v1/repos', { status: 200, body: { repos: [] } });
  assert.match((await run(['list'])).stdout, /^no repositories registered on /);
});

test('remove: DELETE with the admin token; unknown name exit 3; no or wrong token exit 10', async () => {
  routes.set('DELETE /v1/repos/acme%2Fapp', { status: 200, body: { name: 'acme/app', url: 'https://example.invalid/acme/app.git', removed: true } });
  const r = await run(['remove', 'acme/app'], { SNAPCLONE_TOKEN: 's3cret' });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'removed acme/app (https://example.invalid/acme/app.git)\n');
  assert.deepEqual(seen, [{ method: 'DELETE', path: '/v1/repos/acme%2Fapp', auth: 'Bearer s3cret', body: undefined }]);
  const json = await run(['remove', 'acme/app', '--json']);
  assert.equal(JSON.parse(json.stdout).removed, true);

  const unknown = await run(['remove', 'acme/nope']);
  assert.equal(unknown.code, 3);
  routes.set('DELETE /v1/repos/acme%2Fapp', { status: 401, body: { error: 'this endpoint needs the admin token', code: 'unauthorized' } });
  const denied = await run(['remove', 'acme/app']);
  assert.equal(denied.code, 10);
  assert.equal(denied.stderr, 'snapclone: this endpoint needs the admin token\n');

  seen = [];
  for (const args of [['remove'], ['remove', 'a', 'b'], ['remove', 'foo/.git']]) assert.equal((await run(args)).code, 2, args.join(' '));
  assert.deepEqual(seen, [], 'usage errors send nothing');
});

test('set-url: PATCH {url}, then waits for the rebuild; --no-wait returns the queued job', async () => {
  const to = 'https://example.invalid/new/app.git';
  routes.set('PATCH /v1/repos/acme%2Fapp', { status: 200, body: { name: 'acme/app', url: to, job: job(41, 'queued') } });
  jobs.set(41, [job(41, 'running'), job(41, 'succeeded', { commit: 'c'.repeat(40) })]);
  const r = await run(['set-url', 'acme/app', to], { SNAPCLONE_TOKEN: 't' });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `acme/app now fetches from ${to}, built ${'c'.repeat(40)}\n`);
  assert.deepEqual(seen[0], { method: 'PATCH', path: '/v1/repos/acme%2Fapp', auth: 'Bearer t', body: { url: to } });
  assert.ok(seen.slice(1).every((s) => s.method === 'GET' && s.path === '/v1/jobs/41') && seen.length >= 3);

  seen = [];
  const noWait = await run(['set-url', 'acme/app', to, '--no-wait', '--json']);
  assert.equal(noWait.code, 0, noWait.stderr);
  assert.deepEqual(JSON.parse(noWait.stdout), { name: 'acme/app', url: to, job: job(41, 'queued') });
  assert.equal(seen.length, 1, 'no polling with --no-wait');

  // A local path is sent absolute (the server may run elsewhere).
  seen = [];
  routes.set('PATCH /v1/repos/acme%2Fapp', { status: 200, body: { name: 'acme/app', url: '/x', job: null } });
  const dir = mkdtempSync(join(tmpdir(), 'snapclone-seturl-'));
  try {
    await new Promise<void>((resolve) =>
      execFile(process.execPath, [BIN, 'set-url', 'acme/app', '.', '--server', url], { cwd: dir }, () => resolve()),
    );
    assert.deepEqual(seen[0]!.body, { url: dir });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  routes.set('PATCH /v1/repos/acme%2Fapp', { status: 502, body: { error: 'cannot reach https://example.invalid/new/app.git', code: 'unreachable' } });
  assert.equal((await run(['set-url', 'acme/app', to])).code, 4);
  routes.set('PATCH /v1/repos/acme%2Fapp', { status: 400, body: { error: 'upstream URL embeds credentials', code: 'usage' } });
  assert.equal((await run(['set-url', 'acme/app', to])).code, 2);
  assert.equal((await run(['set-url', 'acme/app'])).code, 2);
});

test('a failed job that carries an errorCode exits with that code (sync, add, set-url); without one, build-failed (5)', async () => {
  const cases: [string | undefined, number][] = [
    ['unreachable', 4],
    ['not-found', 3],
    ['build-failed', 5],
    ['made-up-code', 5],
    [undefined, 5],
  ];
  for (const [errorCode, exit] of cases) {
    const failed = job(9, 'failed', { error: 'git fetch failed: could not read from remote repository', ...(errorCode ? { errorCode } : {}) });
    jobs.set(9, [failed]);
    routes.set('POST /v1/repos/acme%2Fapp/sync', { status: 202, body: { job: job(9, 'queued') } });
    routes.set('POST /v1/repos', { status: 201, body: { name: 'acme/app', url: '/srv/app', created: true, job: job(9, 'queued') } });
    routes.set('PATCH /v1/repos/acme%2Fapp', { status: 200, body: { name: 'acme/app', url: '/srv/app', job: job(9, 'queued') } });
    for (const args of [['sync', 'acme/app'], ['add', '/srv/app', '--name', 'acme/app'], ['set-url', 'acme/app', '/srv/app']]) {
      const r = await run(args);
      assert.equal(r.code, exit, `${args[0]} with errorCode ${errorCode}: ${r.stderr}`);
      assert.equal(r.stderr, 'snapclone: build failed: git fetch failed: could not read from remote repository\n');
    }
  }
});
