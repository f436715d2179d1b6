/**
 * Access control over raw HTTP against a real smart-HTTP git server with Basic auth
 * (test/support/git-http-auth.ts): visibility at registration, reads of a private repository
 * with no, a wrong and the right upstream credential (and the probe cache), fail-closed on a
 * dead or silent upstream, signed artifact queries, the credential never in the log, and the
 * per-address rate limit.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, createHash } from 'node:crypto';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { call, makeUpstream, startTestServer, stderrLog, tempDir, waitJob } from './helpers.js';
import { basic, startGitHttpServer, type GitHttpServer } from '../support/git-http-auth.js';
import { manifestArtifacts, parseManifest } from '../../src/clonepack/manifest.js';
import { runCli } from './process-helpers.js';

const ADMIN = 'adm1n-token-x';
const URL_KEY = 'a shared url key for the tests';
const SERVER_CRED = basic('snapclone-server', 'srv-Pw-77Q');
const ALICE = basic('alice', 'al1ce-Pw-93Z');
const MALLORY = basic('mallory', 'wr0ng-Pw-41K');
const SECRETS = ['srv-Pw-77Q', 'al1ce-Pw-93Z', 'wr0ng-Pw-41K', SERVER_CRED.slice(6), ALICE.slice(6), MALLORY.slice(6)];

// The server's own credential for its fetches: http.extraHeader through git's GIT_CONFIG_* env
// (docs/DEPLOY.md). Set before the server starts; network git reads it at each spawn.
process.env.GIT_CONFIG_COUNT = '1';
process.env.GIT_CONFIG_KEY_0 = 'http.extraHeader';
process.env.GIT_CONFIG_VALUE_0 = `Authorization: ${SERVER_CRED}`;
process.env.SNAPCLONE_URL_KEY = URL_KEY;
process.env.SNAPCLONE_RATE_LIMIT = '0'; // this file's polling is not what is tested (one test turns it on)

let forge: GitHttpServer;
let server: Awaited<ReturnType<typeof startTestServer>>;
let root: string;
const admin = { authorization: `Bearer ${ADMIN}` };
const up = (value: string) => ({ 'snapclone-upstream-authorization': value });
let privJob: number;
/** The signature of a query the server handed out (it must not reach the log either). */
let handedSig = '';

function bare(src: string, dest: string): void {
  const r = spawnSync('git', ['clone', '-q', '--bare', src, dest]);
  assert.equal(r.status, 0, r.stderr.toString());
}

before(async () => {
  const work = tempDir();
  const upstream = makeUpstream(work);
  root = join(work, 'forge');
  bare(upstream.dir, join(root, 'team/priv.git'));
  // Other commits (the test clock moves): the public repository shares no artifact with the private one.
  bare(makeUpstream(work, 'other').dir, join(root, 'pub.git'));
  forge = await startGitHttpServer(root, { users: { 'snapclone-server': 'srv-Pw-77Q', alice: 'al1ce-Pw-93Z' }, publicPaths: ['pub.git', 'gone.git'] });
  server = await startTestServer({ adminToken: ADMIN });
});

after(async () => {
  await server?.close();
  await forge?.close();
});

test('registration: public, private and undeterminable upstreams', async () => {
  const pub = await call(server.url, 'POST', '/v1/repos', { url: `${forge.url}/pub.git`, name: 'pub' }, admin);
  assert.equal(pub.status, 201, pub.text);
  assert.equal(pub.json.visibility, 'public');
  const priv = await call(server.url, 'POST', '/v1/repos', { url: `${forge.url}/team/priv.git`, name: 'priv' }, admin);
  assert.equal(priv.status, 201, priv.text);
  assert.equal(priv.json.visibility, 'private');
  privJob = priv.json.job.id;
  // The server builds it with its own credential (GIT_CONFIG_* http.extraHeader).
  assert.equal((await waitJob(server.url, pub.json.job.id, 60_000)).state, 'succeeded');
  const pj = await call(server.url, 'GET', `/v1/jobs/${privJob}`, undefined, admin);
  assert.equal((await waitJobWith(privJob)).state, 'succeeded', pj.text);

  // 404 (no such repository), a dead port, ssh:// and scp-like without visibility: refused, nothing registered.
  const refused = [
    { url: `${forge.url}/gone.git`, name: 'nope', why: /HTTP 404/ },
    { url: 'http://127.0.0.1:1/x.git', name: 'dead', why: /cannot determine/ },
    { url: 'ssh://example.invalid/x.git', name: 'sshx', why: /only http\(s\) upstreams/ },
    { url: 'git@example.invalid:x/y.git', name: 'scpx', why: /only http\(s\) upstreams/ },
  ];
  for (const r of refused) {
    const a = await call(server.url, 'POST', '/v1/repos', { url: r.url, name: r.name }, admin);
    assert.equal(a.status, 400, a.text);
    assert.equal(a.json.code, 'invalid');
    assert.match(a.json.error, /cannot determine whether .* is public: .*; pass visibility/);
    assert.match(a.json.error, r.why);
    assert.equal((await call(server.url, 'GET', `/v1/repos/${r.name}`, undefined, admin)).status, 404);
  }
  const bad = await call(server.url, 'POST', '/v1/repos', { url: `${forge.url}/pub.git`, name: 'pub2', visibility: 'secret' }, admin);
  assert.equal(bad.status, 400);
  assert.equal(bad.json.code, 'usage');
  // Told explicitly: no probe needed (a public upstream registered as private stays private).
  const told = await call(server.url, 'POST', '/v1/repos', { url: `${forge.url}/pub.git/`, name: 'pub-as-private', visibility: 'private' }, admin);
  assert.equal(told.status, 201, told.text);
  assert.equal(told.json.visibility, 'private');
  // A local path is public.
  const local = await call(server.url, 'POST', '/v1/repos', { url: join(root, 'pub.git'), name: 'local' }, admin);
  assert.equal(local.status, 201, local.text);
  assert.equal(local.json.visibility, 'public');
  await waitJobWith(told.json.job.id);
  await waitJobWith(local.json.job.id);
  // PATCH keeps visibility unless given.
  const keep = await call(server.url, 'PATCH', '/v1/repos/pub-as-private', { url: `${forge.url}/pub.git/` }, admin);
  assert.equal(keep.json.visibility, 'private', keep.text);
  await waitJobWith(keep.json.job.id);
});

async function waitJobWith(id: number): Promise<any> {
  for (const deadline = Date.now() + 60_000; ; ) {
    const r = await call(server.url, 'GET', `/v1/jobs/${id}`, undefined, admin);
    assert.equal(r.status, 200, r.text);
    if (r.json.state === 'succeeded' || r.json.state === 'failed') return r.json;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${r.json.state}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

test('a private repository: no credential 401, wrong 403, right one served (probe cached), admin served', async () => {
  const reads = ['/v1/repos/priv', '/v1/repos/priv/resolve?ref=main', `/v1/jobs/${privJob}`];
  for (const path of reads) {
    const none = await call(server.url, 'GET', path);
    assert.equal(none.status, 401, `${path}: ${none.text}`);
    assert.equal(none.json.code, 'unauthorized');
    assert.deepEqual(none.json.upstream, { protocol: 'http', host: new URL(forge.url).host, path: 'team/priv.git' });
    assert.equal(none.headers.get('www-authenticate'), `Snapclone-Upstream realm="${new URL(forge.url).host}"`);
    assert.ok(!('refs' in none.json) && !('manifest' in none.json), 'nothing of the repository in a refusal');

    const wrong = await call(server.url, 'GET', path, undefined, up(MALLORY));
    assert.equal(wrong.status, 403, `${path}: ${wrong.text}`);
    assert.equal(wrong.json.code, 'unauthorized');
    assert.equal(wrong.json.upstream.path, 'team/priv.git');
    // A header that is not "<scheme> <credentials>" is refused without asking the upstream.
    const junk = await call(server.url, 'GET', path, undefined, up('nonsense'));
    assert.equal(junk.status, 403, junk.text);
  }
  // A public repository needs nothing.
  assert.equal((await call(server.url, 'GET', '/v1/repos/pub')).status, 200);
  // The listing shows private repositories to the admin only.
  const anon = await call(server.url, 'GET', '/v1/repos');
  assert.deepEqual(anon.json.repos.map((r: any) => r.name).sort(), ['local', 'pub']);
  const all = await call(server.url, 'GET', '/v1/repos', undefined, admin);
  assert.deepEqual(all.json.repos.map((r: any) => r.name).sort(), ['local', 'priv', 'pub', 'pub-as-private']);

  const hits0 = forge.infoRefs.allowed;
  for (const path of reads) {
    const ok = await call(server.url, 'GET', path, undefined, up(ALICE));
    assert.equal(ok.status, 200, `${path}: ${ok.text}`);
  }
  assert.equal(forge.infoRefs.allowed - hits0, 1, 'one probe for three reads: the grant is cached');
  const refused0 = forge.infoRefs.refused;
  for (let i = 0; i < 3; i++) assert.equal((await call(server.url, 'GET', '/v1/repos/priv', undefined, up(MALLORY))).status, 403);
  assert.equal(forge.infoRefs.refused, refused0, 'the denial is cached too');
  // The server forwarded exactly the caller's value, and it was Alice's on the probe.
  assert.ok(forge.authorizations.includes(ALICE));
  const st = await call(server.url, 'GET', '/v1/repos/priv', undefined, admin);
  assert.equal(st.status, 200);
  assert.equal(st.json.visibility, 'private');
  assert.ok(st.json.refs.length > 0);
});

test('signed artifact access: private digests only with a valid, unexpired query for their manifest', async (t) => {
  const res = await call(server.url, 'GET', '/v1/repos/priv/resolve?ref=main', undefined, up(ALICE));
  assert.equal(res.status, 200, res.text);
  const { query, expiresAt } = res.json.signed;
  handedSig = new URLSearchParams(query).get('sig')!;
  assert.match(query, /^m=[0-9a-f]{64}&exp=\d+&sig=[0-9a-f]{64}$/);
  assert.ok(expiresAt > Date.now() + 3000 * 1000 && expiresAt <= Date.now() + 3600 * 1000 + 1000, 'default TTL 3600 s');
  const m = res.json.manifest.digest as string;
  const manifestBytes = await fetch(`${server.url}/v1/artifacts/${m}?${query}`);
  assert.equal(manifestBytes.status, 200, await manifestBytes.clone().text());
  const manifest = parseManifest(Buffer.from(await manifestBytes.arrayBuffer()));
  const arts = [...new Set(manifestArtifacts(manifest).map((a) => a.digest))];
  assert.ok(arts.length >= 3);
  t.diagnostic(`private manifest + ${arts.length} artifacts, each: unsigned GET and HEAD 403, signed GET and HEAD 200`);
  for (const d of [m, ...arts]) {
    const unsigned = await call(server.url, 'GET', `/v1/artifacts/${d}`);
    assert.equal(unsigned.status, 403, unsigned.text);
    assert.equal(unsigned.json.code, 'unauthorized');
    assert.match(unsigned.json.error, /artifacts of private repositories need a signed URL: resolve first/);
    assert.equal((await fetch(`${server.url}/v1/artifacts/${d}`, { method: 'HEAD' })).status, 403);
    const signed = await fetch(`${server.url}/v1/artifacts/${d}?${query}`);
    assert.equal(signed.status, 200, d);
    assert.equal(createHash('sha256').update(Buffer.from(await signed.arrayBuffer())).digest('hex'), d);
    assert.equal((await fetch(`${server.url}/v1/artifacts/${d}?${query}`, { method: 'HEAD' })).status, 200);
  }
  // Reports: like reads.
  assert.equal((await call(server.url, 'POST', `/v1/artifacts/${arts[0]}/report`, { problem: 'truncated' })).status, 403);
  assert.equal((await call(server.url, 'POST', `/v1/artifacts/${arts[0]}/report?${query}`, { problem: 'truncated' })).status, 202);

  // Tampered: another sig, another exp, another manifest; expired (signed with the shared key).
  const q = new URLSearchParams(query);
  const flip = (s: string) => (s[0] === '0' ? '1' : '0') + s.slice(1);
  const mac = (man: string, exp: number) => createHmac('sha256', createHash('sha256').update(`snapclone url key\n${URL_KEY}`).digest()).update(`${man}\n${exp}`).digest('hex');
  const pubRes = await call(server.url, 'GET', '/v1/repos/pub/resolve?ref=main');
  assert.equal(pubRes.status, 200);
  const pubManifest = pubRes.json.manifest.digest as string;
  const past = Date.now() - 1000;
  const bad = [
    `m=${m}&exp=${q.get('exp')}&sig=${flip(q.get('sig')!)}`,
    `m=${m}&exp=${Number(q.get('exp')) + 1}&sig=${q.get('sig')}`,
    `m=${m}&exp=${past}&sig=${mac(m, past)}`,
    `m=${m}&exp=abc&sig=${q.get('sig')}`,
    `sig=${q.get('sig')}`,
  ];
  for (const b of bad) {
    const r = await call(server.url, 'GET', `/v1/artifacts/${arts[0]}?${b}`);
    assert.equal(r.status, 403, `${b}: ${r.text}`);
    assert.equal(r.json.code, 'unauthorized');
  }
  // A valid query of the public manifest does not open the private repository's artifacts.
  const far = Date.now() + 60_000;
  const pubArts = manifestArtifacts(parseManifest(Buffer.from(await (await fetch(`${server.url}/v1/artifacts/${pubManifest}`)).arrayBuffer())));
  const onlyPrivate = [m, ...arts].find((d) => !pubArts.some((a) => a.digest === d));
  assert.ok(onlyPrivate, 'the private repository has an artifact of its own');
  assert.equal((await call(server.url, 'GET', `/v1/artifacts/${onlyPrivate}?m=${pubManifest}&exp=${far}&sig=${mac(pubManifest, far)}`)).status, 403);
  assert.equal((await call(server.url, 'GET', `/v1/artifacts/${m}?m=${m}&exp=${far}&sig=${mac(m, far)}`)).status, 200, 'a query signed with the shared key is good');
  // Public artifacts stay open by digest alone (older clients), and with their own query.
  const pubUnsigned = await fetch(`${server.url}/v1/artifacts/${pubManifest}`);
  assert.equal(pubUnsigned.status, 200);
  assert.equal((await fetch(`${server.url}/v1/artifacts/${pubManifest}?${pubRes.json.signed.query}`)).status, 200);
  // Status of the private repository, to the admin, names its manifest: already marked.
  const st = await call(server.url, 'GET', '/v1/repos/pub-as-private', undefined, admin);
  const shown = st.json.refs[0].manifest.digest as string;
  assert.equal((await call(server.url, 'GET', `/v1/artifacts/${shown}`)).status, 403, 'a digest status showed is marked before it is shown');
});

test('CLI: add --visibility is sent; a bad value is a usage error; an ssh upstream without it is refused with the reason', async () => {
  const env = { SNAPCLONE_TOKEN: ADMIN };
  const bad = await runCli(['add', join(root, 'pub.git'), '--name', 'cli-bad', '--visibility', 'secret', '--server', server.url], env);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--visibility must be public or private/);
  const ssh = await runCli(['add', 'ssh://example.invalid/x.git', '--name', 'cli-ssh', '--server', server.url], env);
  assert.equal(ssh.code, 7, ssh.stderr);
  assert.match(ssh.stderr, /cannot determine whether ssh:\/\/example.invalid\/x.git is public: .*pass visibility/);
  const priv = await runCli(['add', join(root, 'pub.git'), '--name', 'cli-priv', '--visibility', 'private', '--json', '--server', server.url], env);
  assert.equal(priv.code, 0, priv.stderr);
  assert.equal(JSON.parse(priv.stdout).visibility, 'private');
  assert.equal((await call(server.url, 'GET', '/v1/repos/cli-priv')).status, 401, 'a local upstream told private: only the admin reads it');
  assert.equal((await call(server.url, 'GET', '/v1/repos/cli-priv', undefined, up(ALICE))).status, 403);
  assert.equal((await call(server.url, 'GET', '/v1/repos/cli-priv', undefined, admin)).status, 200);
});

test('a public repository re-pointed at a private upstream becomes private (asked like add asks)', async () => {
  const add = await call(server.url, 'POST', '/v1/repos', { url: `${forge.url}/pub.git`, name: 'flip' }, admin);
  assert.equal(add.status, 201, add.text);
  assert.equal(add.json.visibility, 'public');
  assert.equal((await call(server.url, 'GET', '/v1/repos/flip')).status, 200);
  const moved = await call(server.url, 'PATCH', '/v1/repos/flip', { url: `${forge.url}/team/priv.git` }, admin);
  assert.equal(moved.status, 200, moved.text);
  assert.equal(moved.json.visibility, 'private');
  assert.equal((await call(server.url, 'GET', '/v1/repos/flip')).status, 401, 'the private upstream is not readable without a credential');
  assert.equal((await call(server.url, 'GET', '/v1/repos/flip/resolve?ref=main')).status, 401);
  // Another spelling of the same upstream keeps it (nothing to ask).
  const respelled = await call(server.url, 'PATCH', '/v1/repos/flip', { url: `${forge.url}/team/priv.git/` }, admin);
  assert.equal(respelled.status, 200, respelled.text);
  assert.equal(respelled.json.visibility, 'private');
  await waitJobWith(respelled.json.job.id);
});

test('fail closed: an upstream that does not answer (504) or is gone (502) serves nothing', async () => {
  forge.hang = true;
  const fresh = basic('alice', 'another-cred-1'); // not cached
  const t = await call(server.url, 'GET', '/v1/repos/priv/resolve?ref=main', undefined, up(fresh));
  assert.equal(t.status, 504, t.text);
  assert.equal(t.json.code, 'timeout');
  assert.ok(!('manifest' in t.json));
  forge.hang = false;
  await forge.close();
  const gone = await call(server.url, 'GET', '/v1/repos/priv', undefined, up(basic('alice', 'another-cred-2')));
  assert.equal(gone.status, 502, gone.text);
  assert.equal(gone.json.code, 'unreachable');
  assert.ok(!('refs' in gone.json));
  // Errors are not cached: the same credential is asked again (and still fails closed).
  const again = await call(server.url, 'GET', '/v1/repos/priv', undefined, up(basic('alice', 'another-cred-2')));
  assert.equal(again.status, 502);
  // The admin token still reads it; a public repository needs nothing.
  assert.equal((await call(server.url, 'GET', '/v1/repos/priv', undefined, admin)).status, 200);
});

test('no credential appears in the server log', (t) => {
  const logged = stderrLog.join('');
  t.diagnostic(`${stderrLog.length} log writes, ${Buffer.byteLength(logged)} bytes, searched for ${SECRETS.length + 1} secrets`);
  assert.ok(logged.includes('/v1/repos/priv'), 'the requests were logged');
  for (const s of SECRETS) assert.ok(!logged.includes(s), `the log holds ${s}`);
  assert.ok(handedSig.length === 64 && !logged.includes(handedSig), 'the signature of a signed query is redacted in the request log');
  assert.match(logged, /sig=\*\*\*/);
});

test('rate limit per address: 429 with Retry-After; the admin token, artifacts and probes are not counted', async () => {
  process.env.SNAPCLONE_RATE_LIMIT = '1/3';
  const s = await startTestServer({ adminToken: ADMIN });
  process.env.SNAPCLONE_RATE_LIMIT = '0';
  try {
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await call(s.url, 'GET', '/v1/repos')).status);
    assert.deepEqual(codes.slice(0, 3), [200, 200, 200]);
    const over = await call(s.url, 'GET', '/v1/repos');
    assert.equal(over.status, 429, over.text);
    assert.equal(over.json.code, 'rate-limited');
    assert.ok(Number(over.headers.get('retry-after')) >= 1, `Retry-After ${over.headers.get('retry-after')}`);
    assert.equal((await call(s.url, 'GET', '/v1/repos', undefined, admin)).status, 200, 'the admin is not limited');
    assert.equal((await call(s.url, 'GET', '/healthz')).status, 200);
    assert.equal((await call(s.url, 'GET', '/readyz')).status, 200);
    // Artifact reads are not counted (a 404 here: nothing stored; not a 429).
    for (let i = 0; i < 10; i++) assert.equal((await call(s.url, 'GET', `/v1/artifacts/${'0'.repeat(64)}`)).status, 404);
    // A wrong token is no admin.
    assert.equal((await call(s.url, 'GET', '/v1/repos', undefined, { authorization: 'Bearer nope' })).status, 429);
  } finally {
    await s.close();
  }
});
