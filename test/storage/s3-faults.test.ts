/**
 * The S3 store against object stores that misbehave, as real HTTP servers on loopback: one
 * that accepts connections and never answers (a hung endpoint), one that refuses every
 * conditional put yet stores nothing. And what the SDK prints on load, and where the region
 * comes from when SNAPCLONE_S3_REGION is unset.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { S3ArtifactStore } from '../../src/storage/s3/s3-store.js';
import { s3Settings } from '../../src/storage/config.js';
import { sha256Hex } from '../../src/util/hash.js';
import { isCode } from './contract.js';

process.env.SNAPCLONE_LOG = 'error';

const credentials = { accessKeyId: 'k', secretAccessKey: 's' };

test('s3: a store that accepts connections and never answers is unreachable after the idle timeout, not a hang', { timeout: 30_000 }, async () => {
  const sockets: Socket[] = [];
  const silent = createNetServer((sock) => sockets.push(sock));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const store = new S3ArtifactStore({ bucket: 'b', endpoint, credentials, timeouts: { connectMs: 500, idleMs: 500 } });
  try {
    await assert.rejects(store.stat(sha256Hex('x')), isCode('unreachable'));
    await assert.rejects(store.open(sha256Hex('x')), isCode('unreachable'));
    assert.ok(sockets.length >= 1, 'it did connect');
  } finally {
    store.close();
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  }
});

test('s3: a store that answers 412 to every conditional put but holds nothing fails the put, bounded, saying what to do', { timeout: 30_000 }, async () => {
  let puts = 0;
  const quirky = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.method === 'PUT') {
        puts++;
        res.writeHead(412, { 'content-type': 'application/xml' });
        return void res.end('<?xml version="1.0"?><Error><Code>PreconditionFailed</Code><Message>no</Message></Error>');
      }
      res.writeHead(404).end(); // HEAD: not there
    });
  });
  await new Promise<void>((r) => quirky.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(quirky.address() as AddressInfo).port}`;
  const store = new S3ArtifactStore({ bucket: 'b', endpoint, credentials });
  try {
    await assert.rejects(
      store.putBytes(Buffer.from('never lands')),
      (err: Error) => isCode('unreachable')(err) && /SNAPCLONE_S3_CONDITIONAL_WRITES=0/.test(err.message) && !err.message.includes('\n'),
    );
    assert.ok(puts > 1 && puts <= 10, `a few tries, not a loop (${puts} PUTs)`);
  } finally {
    store.close();
    await new Promise((r) => quirky.close(r));
  }
});

test('s3: making a store prints nothing on stderr (no SDK Node-version warning breaking JSON logs)', () => {
  const storeModule = fileURLToPath(new URL('../../src/storage/s3/s3-store.js', import.meta.url));
  const env = { ...process.env };
  delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
  const r = spawnSync(
    process.execPath,
    ['--input-type=module', '-e', `const m = await import(${JSON.stringify(storeModule)}); new m.S3ArtifactStore({ bucket: 'b', endpoint: 'http://127.0.0.1:1', region: 'us-east-1' }).close();`],
    { env, encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
});

test('s3: without SNAPCLONE_S3_REGION the region is the SDK chain\'s (AWS_REGION), else us-east-1', async () => {
  const env = { SNAPCLONE_S3_BUCKET: 'b' };
  assert.equal(s3Settings(env)!.region, undefined);
  const saved = { AWS_REGION: process.env.AWS_REGION, AWS_PROFILE: process.env.AWS_PROFILE, AWS_CONFIG_FILE: process.env.AWS_CONFIG_FILE };
  try {
    process.env.AWS_CONFIG_FILE = '/nonexistent/snapclone-test-aws-config';
    delete process.env.AWS_PROFILE;
    process.env.AWS_REGION = 'eu-west-3';
    const fromEnv = new S3ArtifactStore({ bucket: 'b', credentials });
    assert.match(await fromEnv.presign(sha256Hex('x'), 60), /X-Amz-Credential=k%2F\d{8}%2Feu-west-3%2Fs3%2F/);
    fromEnv.close();
    delete process.env.AWS_REGION;
    const fallback = new S3ArtifactStore({ bucket: 'b', credentials });
    assert.match(await fallback.presign(sha256Hex('x'), 60), /X-Amz-Credential=k%2F\d{8}%2Fus-east-1%2Fs3%2F/);
    fallback.close();
    const explicit = new S3ArtifactStore({ bucket: 'b', credentials, region: 'ap-south-1' });
    assert.match(await explicit.presign(sha256Hex('x'), 60), /%2Fap-south-1%2F/);
    explicit.close();
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});
