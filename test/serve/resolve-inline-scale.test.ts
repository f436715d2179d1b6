/**
 * Inline resolve answers in the scale-out setup, all real processes: two `snapclone serve
 * --no-builds` sharing PostgreSQL and an S3-compatible store (SeaweedFS), one worker building.
 * Both servers inline the same manifest and table bytes, equal to the bucket's (through the
 * presigned URLs they hand out), and the real CLI clones through either server, the clone
 * equal to `git clone`. Skipped when PostgreSQL or SeaweedFS is not installed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { PostgresServer } from '../support/postgres.js';
import { startSharedEngines } from '../support/engines.js';
import type { Seaweed } from '../support/seaweed.js';
import { compareClones } from '../support/compare.js';
import { git, tmpDir, removeTmpDir } from '../support/git.js';
import { parseManifest } from '../../src/clonepack/manifest.js';
import { sha256Hex } from '../../src/util/hash.js';
import { cli } from '../e2e/harness.js';
import { spawnServe, until, type ServeProcess } from './process-helpers.js';
import { call, makeUpstream } from './helpers.js';

let work: string;
let pg: PostgresServer | null = null;
let weed: Seaweed | null = null;
let env: Record<string, string>;
let upstream: string;
const procs: ServeProcess[] = [];
let skip: string | null = null;

before(async () => {
  const engines = await startSharedEngines();
  if ('skip' in engines) {
    skip = engines.skip;
    return;
  }
  ({ pg, weed } = engines);
  work = tmpDir('snapclone-inline-scale');
  upstream = makeUpstream(work).dir;
  const bucket = await weed.createBucket();
  env = {
    ...weed.env(),
    SNAPCLONE_DATABASE_URL: await pg.createDatabase(),
    SNAPCLONE_S3_BUCKET: bucket,
    SNAPCLONE_S3_ENDPOINT: weed.endpoint,
    SNAPCLONE_LOG: 'info',
    SNAPCLONE_URL_KEY: 'one key for both servers',
  };
  for (const n of [1, 2]) procs.push(spawnServe(['serve', '--no-builds', '--port', '0', '--poll-seconds', '0', '--data-dir', join(work, `server-${n}`)], { env }));
  const worker = spawnServe(['worker', '--data-dir', join(work, 'worker')], { env });
  procs.push(worker);
  await Promise.all(procs.slice(0, 2).map((p) => p.ready));
  await until('worker running', () => /snapclone worker running/.test(worker.stderr()) || worker.child.exitCode !== null, 30_000);
});

after(async () => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  await pg?.stop();
  await weed?.stop();
  if (work) removeTmpDir(work);
});

test('two servers on S3 + PostgreSQL inline the same bytes as the bucket holds; clones through either equal git clone', { timeout: 240_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const [a, b] = (await Promise.all(procs.slice(0, 2).map((p) => p.ready))) as [string, string];
  const added = await call(a, 'POST', '/v1/repos', { url: upstream, name: 'pub' });
  assert.equal(added.status, 201, added.text);
  await until('first build', async () => ['succeeded', 'failed'].includes((await call(b, 'GET', `/v1/jobs/${added.json.job.id}`)).json?.state), 120_000);
  assert.equal((await call(b, 'GET', `/v1/jobs/${added.json.job.id}`)).json.state, 'succeeded');

  const answers = [];
  for (const s of [a, b, a, b]) {
    const r = await call(s, 'GET', '/v1/repos/pub/resolve?ref=&mode=full&inline=1');
    assert.equal(r.status, 200, r.text);
    answers.push(r.json);
  }
  const first = answers[0];
  for (const r of answers) {
    assert.equal(r.manifest.digest, first.manifest.digest, 'both servers compose the same manifest');
    assert.deepEqual(r.inline, first.inline);
  }
  const manifest = Buffer.from(first.inline.manifest, 'base64');
  assert.equal(sha256Hex(manifest), first.manifest.digest);
  const table = parseManifest(manifest).table;
  const tableBytes = Buffer.from(first.inline.table, 'base64');
  assert.equal(sha256Hex(tableBytes), table.digest);
  // What the bucket holds, read through the presigned URLs the answer hands out.
  assert.ok(first.downloads, 'S3 servers presign');
  for (const [d, bytes] of [[first.manifest.digest, manifest], [table.digest, tableBytes]] as const) {
    const got = await fetch(first.downloads.urls[d]);
    assert.equal(got.status, 200, d);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), bytes);
  }

  const expected = join(work, 'git-clone');
  git(['clone', '-q', upstream, expected], { cwd: work });
  for (const [s, n] of [[a, 1], [b, 2]] as const) {
    const dir = join(work, `clone-${n}`);
    const c = await cli(s, ['clone', 'pub', dir, '--quiet']);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(compareClones(expected, dir, { mode: 'editable' }), []);
  }
});
