/**
 * However the launcher starts (Bun sends resolve early through fetch,
 * first-request.ts; Node does not), a clone sends exactly one resolve, with
 * the same path as under Node, and ends with the same exit code and message.
 * The server here is a real HTTP server that counts requests and answers
 * every resolve "not found".
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { hermeticEnv, tmpDir } from '../support/git.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const RUNNERS: Record<string, string[]> = { launcher: [join(ROOT, 'bin/snapclone')], node: [process.execPath, join(ROOT, 'bin/snapclone.js')] };

let server: Server;
let url: string;
let work: string;
const seen: string[] = [];

before(async () => {
  work = tmpDir('snapclone-first-request');
  server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ code: 'not-found', message: 'no repository x/y' }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => new Promise<void>((r) => server.close(() => r())));

function run(runner: string[], args: string[], env: Record<string, string> = {}): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(runner[0]!, [...runner.slice(1), ...args], { env: { ...hermeticEnv(), SNAPCLONE_SERVER: url, ...env } }, (err, _stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr: String(stderr) });
    });
  });
}

let n = 0;
for (const flags of [[], ['--depth', '1'], ['--mode', 'files', '--proxy'], ['-b', 'dev/x y']]) {
  test(`clone ${flags.join(' ')}: one resolve, the same as under Node, and the same exit`, async () => {
    const out: Record<string, { code: number; stderr: string; requests: string[] }> = {};
    for (const [name, runner] of Object.entries(RUNNERS)) {
      seen.length = 0;
      const r = await run(runner, ['clone', 'x/y', join(work, `t${++n}`), ...flags]);
      out[name] = { ...r, requests: [...seen] };
    }
    assert.equal(out.launcher!.requests.length, 1, JSON.stringify(out.launcher));
    assert.deepEqual(out.launcher, out.node);
    assert.equal(out.node!.code, 3);
  });
}

test('a target that cannot take the clone sends nothing, under either runtime', async () => {
  const full = join(work, 'full');
  mkdirSync(full);
  writeFileSync(join(full, 'f'), '');
  for (const runner of Object.values(RUNNERS)) {
    seen.length = 0;
    const r = await run(runner, ['clone', 'x/y', full]);
    assert.equal(r.code, 8, r.stderr);
    assert.deepEqual(seen, []);
  }
});

test('a target below a file, or a bad timeout variable, sends nothing and ends alike under either runtime', async () => {
  const file = join(work, 'a-file');
  writeFileSync(file, '');
  const cases: [string[], Record<string, string>][] = [
    [['clone', 'x/y', join(file, 'sub')], {}],
    [['clone', 'x/y', join(work, 'bad-timeout')], { SNAPCLONE_CONNECT_TIMEOUT_MS: 'banana' }],
    [['clone', 'x/y', join(work, 'bad-timeout')], { SNAPCLONE_STALL_TIMEOUT_MS: '0' }],
  ];
  for (const [args, env] of cases) {
    const out: { code: number; stderr: string; requests: string[] }[] = [];
    for (const runner of Object.values(RUNNERS)) {
      seen.length = 0;
      const r = await run(runner, args, env);
      out.push({ ...r, requests: [...seen] });
    }
    assert.deepEqual(out[0]!.requests, [], JSON.stringify(out));
    assert.deepEqual(out[0], out[1]);
    assert.notEqual(out[0]!.code, 0);
  }
  assert.equal((await run(RUNNERS.launcher!, ['clone', 'x/y', join(work, 'bad-timeout')], { SNAPCLONE_CONNECT_TIMEOUT_MS: 'banana' })).code, 2);
});
