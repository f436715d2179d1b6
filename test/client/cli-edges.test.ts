/**
 * The real CLI (a subprocess) at its edges: a server URL carrying credentials,
 * a closed stdout or stderr, strict --depth parsing, and the short flags the
 * help must name.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';

const BIN = fileURLToPath(new URL('../../../bin/snapclone.js', import.meta.url));
const README = fileURLToPath(new URL('../../../README.md', import.meta.url));

let http: Server;
let url = '';
let work = '';

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'snapclone-cli-edges-'));
  // Enough repositories that `list` writes more than a pipe buffer holds.
  const repos = Array.from({ length: 3000 }, (_, i) => ({ name: `org/repo-${i}`, url: `https://example.invalid/org/repo-${i}.git`, refs: [], builtAt: null }));
  http = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(req.url === '/v1/repos' ? { repos } : {}));
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise((r) => http.close(r));
  rmSync(work, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: work, env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('a server URL with a user name or password is refused (exit 2) without printing the secret', () => {
  const cases: [string[], Record<string, string>][] = [
    [['list', '--server', 'http://u:s3cret@127.0.0.1:1'], {}],
    [['status', 'x', '--server', 'https://s3cret@example.invalid/'], {}],
    [['clone', 'x', join(work, 'c'), '--server', 'http://u:s3cret@127.0.0.1:1'], {}],
    [['list'], { SNAPCLONE_SERVER: 'http://u:s3cret@127.0.0.1:1' }],
    // Not even a URL: the secret-looking part is still not echoed.
    [['list', '--server', 'http://u:s3cret@[nope'], {}],
  ];
  for (const [args, env] of cases) {
    const r = run(args, env);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr + r.stdout, /s3cret/, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  assert.equal(existsSync(join(work, 'c')), false, 'the clone wrote nothing');
});

/** Run the CLI with its stdout (or stderr) a pipe whose reading end is already closed. */
function intoClosedPipe(args: string[], which: 'stdout' | 'stderr'): Promise<{ code: number | null; signal: NodeJS.Signals | null; other: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  child[which].destroy();
  let other = '';
  child[which === 'stdout' ? 'stderr' : 'stdout'].on('data', (b: Buffer) => (other += b.toString()));
  return new Promise((r) => child.on('close', (code, signal) => r({ code, signal, other })));
}

test('a closed stdout (snapclone list | true) ends quietly with exit 141, as a git killed by SIGPIPE, no stack trace', async () => {
  for (const args of [['list', '--server', url], ['list', '--json', '--server', url], ['--help']]) {
    const r = await intoClosedPipe(args, 'stdout');
    assert.equal(r.code, 141, `${args.join(' ')}: ${r.other}`);
    assert.equal(r.other, '', `nothing on stderr: ${r.other}`);
  }
});

test('a closed stderr ends quietly too (exit 141)', async () => {
  const r = await intoClosedPipe(['list', '--server', 'http://127.0.0.1:1'], 'stderr');
  assert.equal(r.code, 141, r.other);
});

test('--depth accepts exactly 1', () => {
  for (const bad of ['1.0', ' 1', '1 ', '01', '+1', '0x1', '1e0', '2', '0', '']) {
    const r = run(['clone', 'x', join(work, 'd'), '--depth', bad, '--server', 'http://127.0.0.1:1']);
    assert.equal(r.code, 2, `--depth ${JSON.stringify(bad)}: ${r.stderr}`);
    assert.match(r.stderr, /--depth/);
  }
  // 1 itself gets past the flag check (and fails for the unreachable server).
  const ok = run(['clone', 'x', join(work, 'd'), '--depth', '1', '--server', 'http://127.0.0.1:1']);
  assert.equal(ok.code, 4, ok.stderr);
  assert.deepEqual(readdirSync(work), []);
});

test('clone --help and the README name the short flags -b and -q', () => {
  const help = run(['clone', '--help']).stdout;
  assert.match(help, /-b, --branch/);
  assert.match(help, /-q, --quiet/);
  const readme = readFileSync(README, 'utf8');
  assert.match(readme, /-b, --branch|`-b`/);
  assert.match(readme, /-q, --quiet|`-q`/);
});
