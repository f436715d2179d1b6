/**
 * The server's log as JSON lines: every line parses, request lines carry a request id (the
 * client's when it is a safe token, echoed in the response), no credential survives from a
 * URL, an upstream URL or a field; and the CLI client never loads the logger (pino) or the
 * metrics library.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { call, startTestServer, stderrLog } from './helpers.js';
import { logLines, type LogLine } from './log-lines.js';
import type { RunningServer } from '../../src/serve/server.js';
import { log } from '../../src/util/log.js';

let server: RunningServer;

before(async () => {
  server = await startTestServer();
});

after(async () => {
  await server.close();
});

/** The JSON log lines written while `fn` ran; a line that is not JSON fails the test. */
async function logged(fn: () => Promise<void>): Promise<{ lines: LogLine[]; raw: string }> {
  const from = stderrLog.length;
  await fn();
  await new Promise((r) => setTimeout(r, 50)); // the last response's 'close' fires after the client has read it
  const raw = stderrLog.slice(from).join('');
  return { lines: logLines(raw, true), raw };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

test('a request line is JSON with the request id: the client\'s safe one echoed, else a fresh one', async () => {
  const answers: { given: string | null; echoed: string | null }[] = [];
  const given = ['edge-7f3a.1:2', 'has space', 'x'.repeat(129), null];
  const { lines } = await logged(async () => {
    for (const id of given) {
      const res = await fetch(`${server.url}/healthz`, { headers: id === null ? {} : { 'x-request-id': id } });
      await res.text();
      answers.push({ given: id, echoed: res.headers.get('x-request-id') });
    }
  });
  assert.equal(answers[0]!.echoed, 'edge-7f3a.1:2', 'a safe id threads through');
  for (const a of answers.slice(1)) assert.match(a.echoed ?? '', UUID, `replaced: ${a.given}`);
  assert.equal(new Set(answers.map((a) => a.echoed)).size, answers.length, 'fresh ids differ');
  const requests = lines.filter((l) => l.url === '/healthz');
  assert.deepEqual(
    requests.map((l) => l.reqId),
    answers.map((a) => a.echoed),
  );
  for (const l of requests) {
    assert.equal(l.level, 'info');
    assert.equal(l.method, 'GET');
    assert.equal(l.status, 200);
    assert.equal(l.bytes, Buffer.byteLength(JSON.stringify({ status: 'ok', quarantined: 0 })));
    assert.equal(typeof l.ms, 'number');
    assert.equal(l.aborted, false);
    assert.match(l.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(l.pid, process.pid);
    assert.match(l.msg, /^GET \/healthz 200 \d+ B \d+ ms$/);
  }
});

test('no token in the log: not from a query string, a header, an upstream URL or its git error; the 5xx line has the request id', async () => {
  // A port with nothing listening: the upstream is unreachable, so git's error (with the URL) is logged as a 502.
  const probe = createNetServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const closedPort = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  let add: Awaited<ReturnType<typeof call>> | undefined;
  const { lines, raw } = await logged(async () => {
    await call(server.url, 'GET', '/v1/repos/nosuch/resolve?ref=main&access_token=QSECRET42&X-Amz-Signature=SIGSECRET42', undefined, { authorization: 'Bearer HSECRET42' });
    add = await call(server.url, 'POST', '/v1/repos', { url: `http://127.0.0.1:${closedPort}/r.git?private_token=UPSECRET42`, name: 'tok', visibility: 'public' }, { 'x-request-id': 'req-upstream-1' });
  });
  assert.equal(add!.status, 502, add!.text);
  assert.equal(add!.headers.get('x-request-id'), 'req-upstream-1');
  assert.doesNotMatch(raw, /QSECRET42|SIGSECRET42|HSECRET42|UPSECRET42/);
  const resolveLine = lines.find((l) => typeof l.url === 'string' && l.url.startsWith('/v1/repos/nosuch/resolve'));
  assert.equal(resolveLine?.url, '/v1/repos/nosuch/resolve?ref=main&access_token=***&X-Amz-Signature=***');
  const failure = lines.find((l) => l.level === 'error' && l.msg.startsWith('POST /v1/repos: 502:'));
  assert.ok(failure, raw);
  assert.equal(failure.reqId, 'req-upstream-1', 'the error line names its request');
  assert.match(failure.msg, /private_token=\*\*\*/, 'the URL is there, redacted');
  assert.ok(lines.some((l) => l.reqId === 'req-upstream-1' && l.msg.startsWith('POST /v1/repos 502 ')));
});

test('fields named like credentials are censored; strings in fields are redacted and one line', async () => {
  const { lines } = await logged(async () => {
    log.warn('with fields', {
      authorization: 'Bearer F1SECRET',
      adminToken: 'F2SECRET',
      headers: { cookie: 'F3SECRET', accept: 'text/plain' },
      nested: { deeper: { password: 'F4SECRET' } },
      upstream: 'https://user:F5SECRET@example.invalid/r.git?token=F6SECRET',
      note: 'two\nlines\u001b[31m',
      count: 3,
    });
  });
  const line = lines.find((l) => l.msg === 'with fields');
  assert.ok(line);
  assert.doesNotMatch(JSON.stringify(line), /F\dSECRET/);
  assert.equal(line.authorization, '***');
  assert.equal(line.adminToken, '***');
  assert.deepEqual(line.headers, { cookie: '***', accept: 'text/plain' });
  assert.deepEqual(line.nested, { deeper: { password: '***' } });
  assert.equal(line.upstream, 'https://user:***@example.invalid/r.git?token=***');
  assert.equal(line.note, 'two / lines[31m');
  assert.equal(line.count, 3);
});

test('SNAPCLONE_LOG sets the level, read at each line', async () => {
  const prev = process.env.SNAPCLONE_LOG;
  try {
    process.env.SNAPCLONE_LOG = 'warn';
    const { lines } = await logged(async () => {
      log.info('level-check info');
      log.warn('level-check warn');
      log.debug('level-check debug');
    });
    assert.deepEqual(
      lines.filter((l) => l.msg.startsWith('level-check')).map((l) => [l.level, l.msg]),
      [['warn', 'level-check warn']],
    );
  } finally {
    process.env.SNAPCLONE_LOG = prev;
  }
});

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));
/** Commands that run the server side (they may load anything). */
const SERVER_COMMANDS = new Set(['cli/serve-cmd.ts', 'cli/worker-cmd.ts']);

test('the CLI client never loads the logger or the metrics library (cheap start-up)', () => {
  // Every module a client command can load, static or dynamic imports, from the CLI's entry.
  const seen = new Set<string>();
  const packages = new Map<string, string>();
  const visit = (file: string) => {
    const rel = file.slice(SRC.length);
    if (seen.has(rel) || SERVER_COMMANDS.has(rel)) return;
    seen.add(rel);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*'([^']+)'|import\(\s*'([^']+)'\s*\)|(?:^|\n)\s*import\s*'([^']+)'/g)) {
      const spec = (m[1] ?? m[2] ?? m[3])!;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else if (!spec.startsWith('node:')) packages.set(spec, rel);
    }
  };
  visit(join(SRC, 'cli/main.ts'));
  assert.ok(seen.has('cli/clone-cmd.ts') && seen.has('client/clone.ts'), `the walk reaches the clone: ${[...seen].join(' ')}`);
  assert.ok(!seen.has('util/log.ts'), 'util/log.ts is loaded by a client command');
  for (const pkg of ['pino', 'prom-client']) assert.ok(!packages.has(pkg), `${pkg} is imported by ${packages.get(pkg)}`);
});
