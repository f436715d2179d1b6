/**
 * The server on a real S3-compatible store (SeaweedFS): it builds into the bucket, resolve
 * hands out presigned URLs, and the CLI clones straight from the bucket (or through the
 * server with --proxy), identical to git clone either way.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { RunningServer } from '../../src/serve/server.js';
import { startServer } from '../../src/serve/server.js';
import { makeMediumRepo, type MediumRepo } from '../support/fixtures.js';
import { compareClones } from '../support/compare.js';
import { git, tmpDir } from '../support/git.js';
import { startSeaweed, WEED_MISSING, type Seaweed } from '../support/seaweed.js';
import { cliOk } from './harness.js';

let work: string;
let weed: Seaweed | null = null;
let server: RunningServer;
let medium: MediumRepo;
let bucket: string;
const saved: Record<string, string | undefined> = {};

before(async () => {
  weed = await startSeaweed();
  if (!weed) return;
  work = tmpDir('snapclone-s3-serve');
  medium = makeMediumRepo(work, { commits: 40 });
  bucket = await weed.createBucket();
  const env = { ...weed.env(), SNAPCLONE_S3_BUCKET: bucket, SNAPCLONE_S3_ENDPOINT: weed.endpoint, SNAPCLONE_S3_PREFIX: 'snap/' };
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  process.env.SNAPCLONE_LOG ??= 'warn';
  server = await startServer({ host: '127.0.0.1', port: 0, dataDir: join(work, 'data'), cacheBytes: 0 });
  await cliOk(server.url, ['add', medium.url, '--name', 'acme/medium']);
});

after(async () => {
  await server?.close();
  for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
  else process.env[k] = v;
  await weed?.stop();
});

test('artifacts live in the bucket; clones come straight from it and equal git clone', async (t) => {
  if (!weed) return t.skip(WEED_MISSING);
  const listed = await weed.client().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'snap/sha256/' }));
  assert.ok((listed.KeyCount ?? 0) > 3, 'the build put its artifacts in the bucket');
  for (const [gitFlags, snapFlags, mode] of [
    [[], [], 'editable'],
    [['--depth', '1'], ['--depth', '1'], 'editable'],
    [[], ['--mode', 'files'], 'files'],
  ] as const) {
    const tag = snapFlags.join('') || 'full';
    const g = join(work, `g-${tag}`);
    const s = join(work, `s-${tag}`);
    git(['clone', '--quiet', ...gitFlags, medium.url, g], { cwd: work });
    const r = await cliOk(server.url, ['clone', 'acme/medium', s, '--json', ...snapFlags]);
    const out = JSON.parse(r.stdout);
    assert.ok(out.objectStore.artifacts > 0, `${tag}: artifacts came from the bucket`);
    assert.equal(out.objectStore.fellBack, 0, `${tag}: none fell back to the server`);
    assert.deepEqual(compareClones(g, s, { mode }), [], `mode ${tag}`);
  }
});

test('--proxy streams every artifact through the server (from the bucket behind it)', async (t) => {
  if (!weed) return t.skip(WEED_MISSING);
  const g = join(work, 'g-proxy');
  const s = join(work, 's-proxy');
  git(['clone', '--quiet', medium.url, g], { cwd: work });
  const r = await cliOk(server.url, ['clone', 'acme/medium', s, '--json', '--proxy']);
  assert.equal(JSON.parse(r.stdout).objectStore.artifacts, 0);
  assert.deepEqual(compareClones(g, s, { mode: 'editable' }), []);
});
