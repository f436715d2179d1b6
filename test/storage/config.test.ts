/** Store selection from the environment (S3 against a real server: s3-store.test.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openArtifactStore, s3Settings } from '../../src/storage/config.js';
import { LocalArtifactStore } from '../../src/storage/local/local-store.js';
import { S3ArtifactStore } from '../../src/storage/s3/s3-store.js';
import { DiskCachedStore } from '../../src/storage/cache/disk-cache.js';
import { isCode } from './contract.js';

test('no SNAPCLONE_S3_BUCKET: the local store under <dataDir>/artifacts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'snapclone-cfg-'));
  try {
    const store = openArtifactStore({ SNAPCLONE_S3_ENDPOINT: 'http://127.0.0.1:1' }, dir);
    assert.ok(store instanceof LocalArtifactStore);
    assert.equal(store.rootDir, join(dir, 'artifacts'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SNAPCLONE_S3_* defaults and choices', () => {
  assert.deepEqual(s3Settings({ SNAPCLONE_S3_BUCKET: 'b' }), { bucket: 'b', prefix: '', cacheMb: 2048, conditionalWrites: true });
  assert.deepEqual(
    s3Settings({
      SNAPCLONE_S3_BUCKET: 'b',
      SNAPCLONE_S3_ENDPOINT: 'https://s3.example.net',
      SNAPCLONE_S3_REGION: 'eu-west-1',
      SNAPCLONE_S3_PREFIX: 'snap/',
      SNAPCLONE_S3_CACHE_MB: '0',
      SNAPCLONE_S3_CONDITIONAL_WRITES: '0',
    }),
    { bucket: 'b', endpoint: 'https://s3.example.net', region: 'eu-west-1', prefix: 'snap/', cacheMb: 0, conditionalWrites: false },
  );
  assert.equal(s3Settings({ SNAPCLONE_S3_BUCKET: 'b', SNAPCLONE_S3_PREFIX: 'snap' })!.prefix, 'snap/');
  const dir = mkdtempSync(join(tmpdir(), 'snapclone-cfg-'));
  try {
    const cached = openArtifactStore({ SNAPCLONE_S3_BUCKET: 'b', SNAPCLONE_S3_CACHE_MB: '1' }, dir);
    assert.ok(cached instanceof DiskCachedStore);
    assert.equal(cached.dir, join(dir, 's3-cache'));
    assert.equal(cached.maxBytes, 1 << 20);
    assert.ok(cached.remote instanceof S3ArtifactStore);
    assert.equal(typeof cached.presign, 'function');
    assert.ok(openArtifactStore({ SNAPCLONE_S3_BUCKET: 'b', SNAPCLONE_S3_CACHE_MB: '0' }, dir) instanceof S3ArtifactStore);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad SNAPCLONE_S3_* values are one-line errors, and never echo credentials', () => {
  const bad: Record<string, string>[] = [
    { SNAPCLONE_S3_ENDPOINT: 'localhost:8333' },
    { SNAPCLONE_S3_ENDPOINT: 'http://AKIA:supersecret@s3.example.net' },
    { SNAPCLONE_S3_CACHE_MB: 'lots' },
    { SNAPCLONE_S3_CACHE_MB: '-5' },
    { SNAPCLONE_S3_PREFIX: '/abs/' },
    { SNAPCLONE_S3_PREFIX: 'a/../b/' },
    { SNAPCLONE_S3_CONDITIONAL_WRITES: 'maybe' },
  ];
  for (const env of bad) {
    assert.throws(
      () => s3Settings({ SNAPCLONE_S3_BUCKET: 'b', ...env }),
      (err: Error) => isCode('invalid')(err) && !err.message.includes('\n') && !err.message.includes('supersecret'),
      JSON.stringify(env),
    );
  }
});
