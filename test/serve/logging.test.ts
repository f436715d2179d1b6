/**
 * What the server logs: one line per request (no credentials, no secrets from
 * query strings), every 5xx with its cause, aborted responses, git's own reason
 * for a failed command, debug detail for maintainers.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { createServer as createHttpServer, request } from 'node:http';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { addAndBuild, call, makeUpstream, startTestServer, stderrLog, tempDir } from './helpers.js';
import { withRequestLog, type RunningServer } from '../../src/serve/server.js';
import { sendError } from '../../src/serve/http-util.js';
import { log } from '../../src/util/log.js';
import { logLines, logText } from './log-lines.js';

let server: RunningServer & { dataDir: string };

before(async () => {
  server = await startTestServer();
});

after(async () => {
  await server.close();
});

/** The log lines written while `fn` ran (after the responses' close events have fired), as "<time> <level> <message>". */
async function logged(fn: () => Promise<void>): Promise<string[]> {
  const from = stderrLog.length;
  await fn();
  await new Promise((r) => setTimeout(r, 50)); // 'close' of the last response fires after the client has read it
  return logText(stderrLog.slice(from)).split('\n').filter((l) => l !== '');
}

test('one line per request: method, path, status, bytes, ms; no token from a header or a query string', async () => {
  const lines = await logged(async () => {
    const h = await call(server.url, 'GET', '/healthz');
    assert.equal(h.status, 200);
    const r = await call(server.url, 'GET', '/v1/repos/nosuch/resolve?ref=main&access_token=QSECRET42', undefined, { authorization: 'Bearer HSECRET42' });
    assert.equal(r.status, 404);
    await call(server.url, 'POST', '/v1/repos', { url: '/nonexistent' }, { authorization: 'Bearer HSECRET42' });
  });
  const text = lines.join('\n');
  assert.match(text, /info GET \/healthz 200 \d+ B \d+ ms$/m);
  const h = /info GET \/healthz 200 (\d+) B/m.exec(text)!;
  assert.equal(Number(h[1]), Buffer.byteLength(JSON.stringify((await call(server.url, 'GET', '/healthz')).json)), 'bytes are the body size');
  assert.match(text, /info GET \/v1\/repos\/nosuch\/resolve\?ref=main&access_token=\*\*\* 404 \d+ B \d+ ms$/m);
  assert.match(text, /info POST \/v1\/repos (4|5)\d\d \d+ B \d+ ms$/m);
  assert.doesNotMatch(text, /QSECRET42|HSECRET42/);
});

test('a directory at an artifact path is a logged quarantine and a 404 artifact-missing with a JSON body, not an empty reply', async () => {
  const digest = 'ab'.repeat(32);
  mkdirSync(join(server.dataDir, 'artifacts', digest.slice(0, 2), digest), { recursive: true });
  const lines = await logged(async () => {
    for (const method of ['GET', 'HEAD']) {
      const res = await fetch(`${server.url}/v1/artifacts/${digest}`, { method });
      assert.equal(res.status, 404);
      if (method === 'GET') assert.equal(((await res.json()) as { code: string }).code, 'artifact-missing');
    }
  });
  const text = lines.join('\n');
  assert.match(text, new RegExp(`error artifact ${digest} quarantined: .*not a regular file`), text);
  assert.match(text, new RegExp(`info GET /v1/artifacts/${digest} 404 `), text);
});

test('an unexpected error is a logged 500 with its cause and, at debug, its stack; the client gets JSON', async () => {
  const http = createHttpServer(
    withRequestLog((_req, res) => {
      sendError(res, new Error('disk on fire'));
    }),
  );
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  try {
    const port = (http.address() as AddressInfo).port;
    const lines = await logged(async () => {
      const res = await fetch(`http://127.0.0.1:${port}/v1/anything`);
      assert.equal(res.status, 500);
      assert.deepEqual(await res.json(), { error: 'internal server error', code: 'internal' });
    });
    const text = lines.join('\n');
    assert.match(text, /error GET \/v1\/anything: 500: .*disk on fire/, text);
    assert.match(text, /info GET \/v1\/anything 500 /, text);
    const stack = logLines(stderrLog).find((l) => l.level === 'debug' && (l.err as { message?: string } | undefined)?.message === 'disk on fire');
    assert.ok(stack, 'the stack at debug');
    assert.ok((stack.err as { stack: string[] }).stack.some((f) => f.startsWith('at ')), JSON.stringify(stack));
  } finally {
    await new Promise((r) => http.close(r));
  }
});

test('a response that fails after its headers were sent is cut, and the abort is logged with its cause', async () => {
  const http = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-length': 1000 });
    res.write('x'.repeat(10));
    sendError(res, new Error('disk read failed: EIO'));
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  try {
    const port = (http.address() as AddressInfo).port;
    const lines = await logged(async () => {
      const outcome = await new Promise<string>((resolve) => {
        const req = request({ host: '127.0.0.1', port, path: '/v1/artifacts/x' }, (res) => {
          let n = 0;
          res.on('data', (b: Buffer) => (n += b.length));
          res.on('error', () => resolve(`aborted after ${n}`));
          res.on('end', () => resolve(`complete ${n}`));
        });
        req.on('error', (e) => resolve(`error ${e.message}`));
        req.end();
      });
      assert.match(outcome, /^aborted|^error/, outcome);
    });
    assert.match(lines.join('\n'), /error GET \/v1\/artifacts\/x: response aborted after its headers were sent: disk read failed: EIO/);
  } finally {
    http.close();
  }
});

test('a failed git command keeps the line that says why, without the boilerplate', async () => {
  const missing = 'file:///nonexistent/repo.git';
  const r = await call(server.url, 'POST', '/v1/repos', { url: missing, name: 'ghost' });
  assert.equal(r.json.code, 'unreachable', r.text);
  assert.match(r.json.error, /^git ls-remote failed \(exit 128\): fatal: '\/nonexistent\/repo\.git' does not appear to be a git repository/);
  assert.doesNotMatch(r.json.error, /Please make sure|correct access rights/);
});

test('debug lines: git commands with durations, store writes, job phases', async () => {
  const up = makeUpstream(tempDir());
  const lines = await logged(async () => {
    await addAndBuild(server.url, up.dir, 'dbg');
  });
  const text = lines.join('\n');
  assert.match(text, /debug git ls-remote --symref -- \S+ HEAD .*: exit 0, \d+ ms/);
  assert.match(text, /debug store: put [0-9a-f]{64} \(\d+ bytes/);
  assert.match(text, /debug job \d+: fetching$/m);
  assert.match(text, /debug job \d+: succeeded in \d+ ms/);
  for (const l of lines) assert.doesNotMatch(l, /[\u0000-\u0008\u000b-\u001f\u007f]/, `control character in a log line: ${JSON.stringify(l)}`);
});

test('a log line stays one line: line breaks and control characters in a message cannot forge another', async () => {
  const lines = await logged(async () => {
    log.error('job 1 failed: boom\n2030-01-01T00:00:00.000Z info forged\u0000\u001b[31m');
  });
  const mine = lines.filter((l) => l.includes('boom'));
  assert.equal(mine.length, 1, lines.join('\n'));
  assert.match(mine[0]!, /error job 1 failed: boom \/ 2030-01-01T00:00:00\.000Z info forged\[31m$/);
  assert.ok(!lines.some((l) => l.startsWith('2030-')));
});
