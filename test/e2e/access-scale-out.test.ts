/**
 * Access control with several servers, all real processes: two `snapclone serve --no-builds`
 * sharing PostgreSQL and an S3-compatible store (SeaweedFS), a worker, and a private upstream
 * on a real smart-HTTP git server with Basic auth (test/support/git-http-auth.ts). Both servers
 * refuse the private repository without a credential and serve it with one; a signed query
 * made by one server is accepted by the other (shared SNAPCLONE_URL_KEY), and the private-
 * artifact index (in PostgreSQL) closes unsigned reads on both. Resolves without the admin
 * token can only start bounded work (on-demand.ts, per server), and with it they are not bounded.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import postgres from 'postgres';
import type { PostgresServer } from '../support/postgres.js';
import { startSharedEngines } from '../support/engines.js';
import type { Seaweed } from '../support/seaweed.js';
import { git, tmpDir } from '../support/git.js';
import { basic, startGitHttpServer, type GitHttpServer } from '../support/git-http-auth.js';
import { BIN, spawnServe, until, type ServeProcess } from '../serve/process-helpers.js';
import { call } from '../serve/helpers.js';

const ADMIN = 'scale-admin-token-1';
const SERVER_CRED = basic('snapclone-server', 'srv-Pw-55X');
const ALICE = basic('alice', 'al1ce-Pw-18Y');
const BRANCHES = 10;

let work: string;
let pg: PostgresServer | null = null;
let weed: Seaweed | null = null;
let sql: postgres.Sql | null = null;
let forge: GitHttpServer | null = null;
let env: Record<string, string>;
const procs: ServeProcess[] = [];
let worker: ServeProcess | null = null;
let skip: string | null = null;

function serve(n: number): ServeProcess {
  // serverEnv drops SNAPCLONE_ADMIN_TOKEN; env(1) sets it for this process only.
  const p = spawnServe(['serve', '--no-builds', '--port', '0', '--poll-seconds', '0', '--data-dir', join(work, `server-${n}`)], {
    env,
    cmd: ['/usr/bin/env', `SNAPCLONE_ADMIN_TOKEN=${ADMIN}`, process.execPath, BIN],
  });
  procs.push(p);
  return p;
}

const admin = { authorization: `Bearer ${ADMIN}` };
const up = (v: string) => ({ 'snapclone-upstream-authorization': v });

before(async () => {
  const engines = await startSharedEngines();
  if ('skip' in engines) {
    skip = engines.skip;
    return;
  }
  ({ pg, weed } = engines);
  work = tmpDir('snapclone-access-scale');
  const src = join(work, 'src');
  git(['init', '-q', '-b', 'main', src], { cwd: work });
  git(['-c', 'user.name=t', '-c', 'user.email=t@e', 'commit', '-q', '--allow-empty', '-m', 'first'], { cwd: src });
  for (let i = 0; i < BRANCHES; i++) git(['branch', `b${i}`], { cwd: src });
  git(['clone', '-q', '--bare', src, join(work, 'forge', 'org', 'secret.git')], { cwd: work });
  forge = await startGitHttpServer(join(work, 'forge'), { users: { 'snapclone-server': 'srv-Pw-55X', alice: 'al1ce-Pw-18Y' } });
  const dbUrl = await pg.createDatabase();
  sql = postgres(dbUrl, { max: 2, onnotice: () => {} });
  const bucket = await weed.createBucket();
  env = {
    ...weed.env(),
    SNAPCLONE_DATABASE_URL: dbUrl,
    SNAPCLONE_S3_BUCKET: bucket,
    SNAPCLONE_S3_ENDPOINT: weed.endpoint,
    SNAPCLONE_LOG: 'info',
    SNAPCLONE_URL_KEY: 'one key for every server of this test',
    // The servers' and workers' own credential for the upstream (docs/DEPLOY.md).
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: 'http.extraHeader',
    GIT_CONFIG_VALUE_0: `Authorization: ${SERVER_CRED}`,
  };
  serve(1);
  serve(2);
  worker = spawnServe(['worker', '--data-dir', join(work, 'worker')], { env });
  procs.push(worker);
  await Promise.all(procs.slice(0, 2).map((p) => p.ready));
  await until('worker running', () => /snapclone worker running/.test(worker!.stderr()) || worker!.child.exitCode !== null, 30_000);
});

after(async () => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  await sql?.end({ timeout: 1 });
  await pg?.stop();
  await weed?.stop();
  await forge?.close();
});

test('two servers: a private repository is refused without a credential on both and served with one; signed queries cross servers; unauthenticated resolves stay bounded', { timeout: 240_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const [a, b] = await Promise.all(procs.slice(0, 2).map((p) => p.ready)) as [string, string];
  const repoUrl = `${forge!.url}/org/secret.git`;

  const added = await call(a, 'POST', '/v1/repos', { url: repoUrl, name: 'org/secret' }, admin);
  assert.equal(added.status, 201, added.text);
  assert.equal(added.json.visibility, 'private', 'determined by the anonymous probe (401)');
  await until('first build', async () => ['succeeded', 'failed'].includes((await call(b, 'GET', `/v1/jobs/${added.json.job.id}`, undefined, admin)).json?.state), 120_000);
  assert.equal((await call(b, 'GET', `/v1/jobs/${added.json.job.id}`, undefined, admin)).json.state, 'succeeded');
  // No more builds from here: on-demand jobs stay queued, so "bounded" is what is queued.
  worker!.child.kill('SIGKILL');
  await worker!.exited;

  const host = new URL(forge!.url).host;
  for (const s of [a, b]) {
    for (const path of ['/v1/repos/org%2Fsecret', '/v1/repos/org%2Fsecret/resolve?ref=main', `/v1/jobs/${added.json.job.id}`]) {
      const none = await call(s, 'GET', path);
      assert.equal(none.status, 401, `${s}${path}: ${none.text}`);
      assert.deepEqual(none.json.upstream, { protocol: 'http', host, path: 'org/secret.git' });
      assert.match(none.headers.get('www-authenticate') ?? '', /^Snapclone-Upstream realm=/);
      assert.equal((await call(s, 'GET', path, undefined, up(basic('alice', 'nope')))).status, 403, path);
      assert.equal((await call(s, 'GET', path, undefined, up(ALICE))).status, 200, path);
    }
    assert.deepEqual((await call(s, 'GET', '/v1/repos')).json.repos, [], 'not listed to anyone but the admin');
  }

  // Signed on A, read on B (and A); unsigned on either: refused (the index is in PostgreSQL).
  const res = await call(a, 'GET', '/v1/repos/org%2Fsecret/resolve?ref=main', undefined, up(ALICE));
  assert.equal(res.status, 200, res.text);
  const m = res.json.manifest.digest as string;
  for (const s of [b, a]) {
    const signed = await fetch(`${s}/v1/artifacts/${m}?${res.json.signed.query}`);
    assert.equal(signed.status, 200, s);
    assert.equal(createHash('sha256').update(Buffer.from(await signed.arrayBuffer())).digest('hex'), m);
    const unsigned = await call(s, 'GET', `/v1/artifacts/${m}`);
    assert.equal(unsigned.status, 403, unsigned.text);
    assert.equal(unsigned.json.code, 'unauthorized');
  }

  // Without the admin token, resolves of unbuilt branches start at most maxActive (2) builds per server.
  const answers: number[] = [];
  for (let i = 0; i < BRANCHES - 1; i++) {
    const r = await call(i % 2 ? b : a, 'GET', `/v1/repos/org%2Fsecret/resolve?ref=b${i}`, undefined, up(ALICE));
    answers.push(r.status);
    if (r.status === 429) assert.ok(Number(r.headers.get('retry-after')) >= 1);
  }
  const queued = await sql!`SELECT count(*)::int AS n FROM jobs WHERE repo = 'org/secret' AND state = 'queued'`;
  assert.equal(answers.filter((s) => s === 202).length, 4, `answers ${answers.join(',')}`);
  assert.equal(answers.filter((s) => s === 429).length, BRANCHES - 1 - 4);
  assert.equal(queued[0]!.n, 4, 'at most 2 on-demand builds per server were queued');
  // With the admin token: not bounded.
  const adminResolve = await call(a, 'GET', `/v1/repos/org%2Fsecret/resolve?ref=b${BRANCHES - 1}`, undefined, admin);
  assert.equal(adminResolve.status, 202, adminResolve.text);
  const after = await sql!`SELECT count(*)::int AS n FROM jobs WHERE repo = 'org/secret' AND state = 'queued'`;
  assert.equal(after[0]!.n, 5);
  // The credential never reached either server's log.
  for (const p of procs) for (const secret of ['al1ce-Pw-18Y', 'srv-Pw-55X', ALICE.slice(6), SERVER_CRED.slice(6)]) assert.ok(!p.stderr().includes(secret), 'a credential in the log');
});
