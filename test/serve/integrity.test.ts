/**
 * Damaged artifacts on a real server's disk (overwritten bytes, truncation, a
 * missing file, a directory in a file's place): the server must notice on the
 * first read and on a client's report, quarantine the copy, say so in the log,
 * /healthz and status, answer 404 artifact-missing, and put the artifact back
 * on the next sync, all without a restart. Clones go through the real CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, openSync, closeSync, readFileSync, readSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { addAndBuild, call, commit, makeUpstream, startTestServer, stderrLog, tempDir, waitJob } from './helpers.js';
import { logText } from './log-lines.js';
import { cli } from '../e2e/harness.js';
import { gitTry } from '../support/git.js';
import { randomBytes } from '../support/fixtures.js';
import { parseManifest, type Manifest } from '../../src/clonepack/manifest.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;

/** A server with one repository `demo` whose history pack spans several 1 MiB read chunks. */
async function setup(cacheBytes: number): Promise<{ s: Server; m: Manifest; work: string }> {
  const work = tempDir();
  const up = makeUpstream(work);
  commit(up.dir, { 'data/blob.bin': randomBytes(3 << 20, 6).toString('latin1') }, 'big file');
  const s = await startTestServer({ cacheBytes });
  await addAndBuild(s.url, up.dir, 'demo');
  const resolved = await call(s.url, 'GET', '/v1/repos/demo/resolve');
  const m = parseManifest((await get(s, resolved.json.manifest.digest)).body);
  return { s, m, work };
}

function pathOf(s: Server, digest: string): string {
  return join(s.dataDir, 'artifacts', digest.slice(0, 2), digest);
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Overwrite 3 bytes in the middle of a stored artifact, as the user did. */
function corrupt(path: string): void {
  chmodSync(path, 0o644);
  const fd = openSync(path, 'r+');
  try {
    const at = Math.floor(statSync(path).size / 2);
    const b = Buffer.alloc(3);
    readSync(fd, b, 0, 3, at);
    for (let i = 0; i < 3; i++) b[i] = b[i]! ^ 0xff;
    writeSync(fd, b, 0, 3, at);
  } finally {
    closeSync(fd);
  }
  chmodSync(path, 0o444);
}

/** Raw GET/HEAD: the status, the bytes that arrived, and whether the body ended as promised. */
function get(s: Server, digest: string, method = 'GET'): Promise<{ status: number; body: Buffer; complete: boolean; json: any }> {
  return new Promise((resolve) => {
    const req = httpRequest(`${s.url}/v1/artifacts/${digest}`, { method, agent: false }, (res) => {
      const parts: Buffer[] = [];
      const finish = (complete: boolean) => {
        const body = Buffer.concat(parts);
        let json: any = null;
        try {
          json = JSON.parse(body.toString('utf8'));
        } catch {
          /* artifact bytes */
        }
        resolve({ status: res.statusCode!, body, complete, json });
      };
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => finish(res.complete));
      res.on('error', () => finish(false));
      res.on('aborted', () => finish(false));
    });
    // Dropped before any response (a damaged copy held back in whole): status 0.
    req.on('error', () => resolve({ status: 0, body: Buffer.alloc(0), complete: false, json: null }));
    req.end();
  });
}

async function until(what: string, fn: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function health(s: Server): Promise<any> {
  const h = await call(s.url, 'GET', '/healthz');
  assert.equal(h.status, 200, h.text);
  return h.json;
}

async function damaged(s: Server): Promise<any[]> {
  const st = await call(s.url, 'GET', '/v1/repos/demo');
  assert.equal(st.status, 200, st.text);
  return st.json.damaged;
}

async function sync(s: Server): Promise<void> {
  const r = await call(s.url, 'POST', '/v1/repos/demo/sync', {});
  assert.equal(r.status, 202, r.text);
  const job = await waitJob(s.url, r.json.job.id);
  assert.equal(job.state, 'succeeded', job.error);
}

function logSince(mark: number): string {
  return logText(stderrLog.slice(mark));
}

async function cloneWorks(s: Server, work: string, dir: string): Promise<void> {
  const target = join(work, dir);
  const r = await cli(s.url, ['clone', 'demo', target]);
  assert.equal(r.code, 0, r.stderr);
  const fsck = gitTry(['fsck', '--full'], { cwd: target });
  assert.equal(fsck.status, 0, fsck.stderr.toString());
}

test('a history pack corrupted on disk is caught on its first read, quarantined, reported, and rebuilt by the next sync', async () => {
  const { s, m, work } = await setup(0); // no cache: every read streams from disk
  try {
    const pack = m.historyPacks[0]!.pack;
    assert.ok(pack.size > 2 << 20, `history pack of ${pack.size} bytes spans several read chunks`);
    assert.deepEqual(await health(s), { status: 'ok', quarantined: 0 });
    assert.deepEqual(await damaged(s), []);
    corrupt(pathOf(s, pack.digest));

    const mark = stderrLog.length;
    const first = await get(s, pack.digest);
    // Bytes already sent cannot be recalled, but the response must not pass for complete.
    assert.equal(first.status, 200);
    assert.equal(first.complete, false, 'a damaged artifact was sent as a complete response');
    assert.ok(first.body.length < pack.size);

    const again = await get(s, pack.digest);
    assert.equal(again.status, 404);
    assert.equal(again.json.code, 'artifact-missing');
    assert.equal((await get(s, pack.digest, 'HEAD')).status, 404);
    assert.match(logSince(mark), new RegExp(`error .*${pack.digest}.*quarantined: .*hash`));
    assert.deepEqual(await health(s), { status: 'degraded', quarantined: 1 });
    const dmg = await damaged(s);
    assert.deepEqual(dmg.map((d) => d.digest), [pack.digest]);
    assert.equal(typeof dmg[0].reason, 'string');
    assert.ok(Number.isSafeInteger(dmg[0].since) && dmg[0].since <= Date.now());
    assert.ok(existsSync(join(s.dataDir, 'artifacts', 'quarantine', pack.digest)));
    assert.equal(existsSync(pathOf(s, pack.digest)), false);

    // A clone fails and leaves nothing behind.
    const failed = await cli(s.url, ['clone', 'demo', join(work, 'c1')]);
    assert.notEqual(failed.code, 0);
    assert.equal(existsSync(join(work, 'c1')), false);

    // Same commit upstream, yet the next sync rebuilds the damaged build, and clones work again.
    await sync(s);
    assert.equal(sha256(readFileSync(pathOf(s, pack.digest))), pack.digest);
    const good = await get(s, pack.digest);
    assert.equal(good.status, 200);
    assert.equal(good.complete, true);
    assert.equal(sha256(good.body), pack.digest);
    assert.deepEqual(await health(s), { status: 'ok', quarantined: 0 });
    assert.deepEqual(await damaged(s), []);
    await cloneWorks(s, work, 'c2');
  } finally {
    await s.close();
  }
});

test('the hot cache serves only verified bytes: a pack corrupted before its first load is never served, and its restored file serves without a restart', async () => {
  const { s, m, work } = await setup(64 << 20); // cached: artifacts up to 16 MiB live in memory
  try {
    const pack = m.historyPacks[0]!.pack;
    const path = pathOf(s, pack.digest);
    const original = readFileSync(path);
    corrupt(path);

    const r = await get(s, pack.digest);
    assert.equal(r.status, 404, 'the corrupt bytes were served');
    assert.equal(r.json.code, 'artifact-missing');
    assert.deepEqual(await health(s), { status: 'degraded', quarantined: 1 });
    assert.deepEqual((await damaged(s)).map((d) => d.digest), [pack.digest]);

    // The operator restores the file: it is verified on its next read and served, no restart needed.
    writeFileSync(path, original, { mode: 0o444 });
    const restored = await get(s, pack.digest);
    assert.equal(restored.status, 200);
    assert.equal(sha256(restored.body), pack.digest);
    assert.deepEqual(await health(s), { status: 'ok', quarantined: 0 });
    await cloneWorks(s, work, 'c');
  } finally {
    await s.close();
  }
});

test('a client report re-checks the stored copy: a good one is left alone, a bad one quarantined, a repeat soon after not re-hashed', async () => {
  const { s, m } = await setup(0);
  try {
    const good = m.archive.chunks[0]!.digest;
    const bad = m.table.digest;
    for (const d of [good, bad]) assert.equal(sha256((await get(s, d)).body), d); // read once: verified, remembered

    let mark = stderrLog.length;
    const r1 = await call(s.url, 'POST', `/v1/artifacts/${good}/report`, { problem: 'digest-mismatch' });
    assert.deepEqual([r1.status, r1.json], [202, { status: 'checking' }]);
    await until('the good copy is checked', async () => logSince(mark).includes(`artifact ${good} checked (a client reported digest-mismatch): intact`));
    assert.equal(sha256((await get(s, good)).body), good);
    assert.deepEqual(await health(s), { status: 'ok', quarantined: 0 });

    // Damaged after its first (verified) read: only a report can tell the server.
    corrupt(pathOf(s, bad));
    mark = stderrLog.length;
    const r2 = await call(s.url, 'POST', `/v1/artifacts/${bad}/report`, { problem: 'digest-mismatch' });
    assert.equal(r2.status, 202);
    await until('the bad copy is quarantined', async () => (await get(s, bad)).status === 404);
    assert.equal((await get(s, bad)).json.code, 'artifact-missing');
    assert.match(logSince(mark), new RegExp(`warn .*client reports artifact ${bad}: digest-mismatch`));
    assert.match(logSince(mark), new RegExp(`error .*${bad}.*quarantined`));
    assert.deepEqual(await health(s), { status: 'degraded', quarantined: 1 });
    assert.deepEqual((await damaged(s)).map((d) => d.digest), [bad]);

    // Reports cannot make the server hash one artifact over and over.
    mark = stderrLog.length;
    assert.equal((await call(s.url, 'POST', `/v1/artifacts/${good}/report`, { problem: 'truncated' })).status, 202);
    await until('the repeat is skipped', async () => logSince(mark).includes(`check of artifact ${good} (a client reported truncated) skipped`));

    // Bad reports are refused.
    for (const [digest, body] of [
      [good, { problem: 'nope' }],
      [good, {}],
      ['xyz', { problem: 'missing' }],
      [good, 'not json'],
    ] as const) {
      const r = await call(s.url, 'POST', `/v1/artifacts/${digest}/report`, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.json.code, 'invalid');
    }
    await sync(s);
    assert.deepEqual(await health(s), { status: 'ok', quarantined: 0 });
    assert.equal(sha256((await get(s, bad)).body), bad);
  } finally {
    await s.close();
  }
});

test('a missing artifact answers 404 artifact-missing, and the next sync puts it back', async () => {
  const { s, m, work } = await setup(0);
  try {
    const chunk = m.archive.chunks[0]!.digest;
    rmSync(pathOf(s, chunk));
    for (const method of ['GET', 'HEAD']) {
      const r = await get(s, chunk, method);
      assert.equal(r.status, 404, method);
      if (method === 'GET') assert.equal(r.json.code, 'artifact-missing');
    }
    const failed = await cli(s.url, ['clone', 'demo', join(work, 'c1')]);
    assert.notEqual(failed.code, 0);
    assert.doesNotMatch(failed.stderr, /unknown repository/);
    await sync(s);
    assert.equal(sha256((await get(s, chunk)).body), chunk);
    await cloneWorks(s, work, 'c2');
  } finally {
    await s.close();
  }
});

test('a truncated artifact: its first read fails and quarantines it; unread, the next sync sees the wrong size and replaces it', async () => {
  const { s, m } = await setup(0);
  try {
    const pack = m.historyPacks[0]!.pack;
    truncateSync(pathOf(s, pack.digest), Math.floor(pack.size / 2));
    const r = await get(s, pack.digest);
    assert.ok(r.status === 404 || !r.complete, 'a truncated artifact was served as complete');
    assert.equal((await get(s, pack.digest)).json?.code, 'artifact-missing');
    assert.deepEqual(await health(s), { status: 'degraded', quarantined: 1 });

    // Never read since the start: only its size betrays it.
    const idx = m.historyPacks[0]!.idx;
    truncateSync(pathOf(s, idx.digest), Math.floor(idx.size / 2));
    truncateSync(pathOf(s, m.table.digest), 0);
    await sync(s);
    for (const a of [pack, idx, m.table]) {
      assert.equal(statSync(pathOf(s, a.digest)).size, a.size);
      assert.equal(sha256((await get(s, a.digest)).body), a.digest);
    }
    assert.deepEqual(await health(s), { status: 'ok', quarantined: 0 });
  } finally {
    await s.close();
  }
});

test('an empty file under a non-empty digest is a 404 artifact-missing, not a 200 with no bytes', async () => {
  const { s, m } = await setup(0);
  try {
    const chunk = m.archive.chunks[0]!;
    truncateSync(pathOf(s, chunk.digest), 0);
    const r = await get(s, chunk.digest);
    assert.equal(r.status, 404);
    assert.equal(r.json.code, 'artifact-missing');
    assert.deepEqual(await health(s), { status: 'degraded', quarantined: 1 });
  } finally {
    await s.close();
  }
});

test('a directory at an artifact path is a 404 artifact-missing, not a dropped connection, and sync replaces it', async () => {
  const { s, m } = await setup(0);
  try {
    const chunk = m.archive.chunks[0]!.digest;
    const path = pathOf(s, chunk);
    rmSync(path);
    mkdirSync(path);
    writeFileSync(join(path, 'inside'), 'x');
    const r = await get(s, chunk);
    assert.equal(r.status, 404);
    assert.equal(r.json.code, 'artifact-missing');
    const dmg = await damaged(s);
    assert.deepEqual(dmg.map((d) => [d.digest, d.reason]), [[chunk, 'not a regular file']]);
    await sync(s);
    assert.ok(statSync(path).isFile());
    assert.equal(sha256((await get(s, chunk)).body), chunk);
    assert.deepEqual(await damaged(s), []);
  } finally {
    await s.close();
  }
});

test('with SNAPCLONE_VERIFY_MBPS, a background scan finds damage in artifacts nobody reads', async () => {
  const { s: first, m } = await setup(0);
  const dataDir = first.dataDir;
  await first.close();
  corrupt(pathOf(first, m.table.digest)); // while no server runs: nothing has read it since
  const s = await startTestServer({ dataDir, cacheBytes: 0, verifyMbps: 200 });
  try {
    await until('the scan quarantines the table', async () => (await health(s)).quarantined === 1, 30_000);
    assert.deepEqual((await damaged(s)).map((d) => d.digest), [m.table.digest]);
    assert.equal((await get(s, m.table.digest)).json?.code, 'artifact-missing');
    const pack = m.historyPacks[0]!.pack.digest;
    assert.equal(sha256((await get(s, pack)).body), pack, 'intact artifacts are left alone');
  } finally {
    await s.close();
  }
});
