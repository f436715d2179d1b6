/**
 * bin/snapclone, the launcher users run (made by `npm run build`: Bun when
 * `npm ci` installed it, else Node), against a real server: its clones in every
 * mode equal `git clone`'s, its exit codes and help are the CLI's, and `serve`
 * through it runs on Node in the same process (execve). Under Bun the clone's
 * resolve goes out through fetch before the client loads (first-request.ts):
 * these clones cover that path end to end.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { basename, join } from 'node:path';
import type { RunningServer } from '../../src/serve/server.js';
import { HELP, COMMAND_HELP } from '../../src/cli/help.js';
import { bunShebang, findBun, launcherText } from '../../src/cli/launcher.js';
import { makeParityRepo, type ParityRepo } from '../support/fixtures.js';
import { compareClones } from '../support/compare.js';
import { gitText, gitTry, hermeticEnv, tmpDir } from '../support/git.js';
import { cliOk, startTestServer, type CliResult } from '../e2e/harness.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const LAUNCHER = join(ROOT, 'bin/snapclone');

let work: string;
let server: RunningServer;
let up: ParityRepo;

before(async () => {
  assert.ok(existsSync(LAUNCHER), 'bin/snapclone is missing: `npm run build` makes it');
  work = tmpDir('snapclone-launcher');
  up = makeParityRepo(join(work, 'upstream'));
  server = await startTestServer(work);
  await cliOk(server.url, ['add', up.url, '--name', 'fx/parity']);
});

after(async () => {
  await server?.close();
});

function launch(args: string[], env: Record<string, string | undefined> = {}, cwd?: string): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(LAUNCHER, args, { cwd, env: { ...hermeticEnv(), SNAPCLONE_SERVER: server.url, ...env }, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

let n = 0;

/** git clone and the launcher's clone with the same flags must be indistinguishable. */
async function parity(gitFlags: string[], snapFlags: string[], mode: 'editable' | 'files' = 'editable', env: Record<string, string> = {}): Promise<string> {
  const g = join(work, `git-${++n}`);
  const s = join(work, `snap-${n}`);
  const gr = gitTry(['clone', '--quiet', ...gitFlags, up.url, g], { cwd: work });
  assert.equal(gr.status, 0, `git clone failed: ${gr.stderr.toString()}`);
  const r = await launch(['clone', 'fx/parity', s, ...snapFlags, ...(mode === 'files' ? ['--mode', 'files'] : [])], env);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(compareClones(g, s, { mode }), []);
  if (mode === 'editable') {
    assert.equal(gitText(['status', '--porcelain'], { cwd: s }), '');
    assert.equal(gitText(['rev-parse', 'HEAD'], { cwd: s }), gitText(['rev-parse', 'HEAD'], { cwd: g }));
    assert.equal(gitText(['for-each-ref'], { cwd: s }), gitText(['for-each-ref'], { cwd: g }));
    assert.equal(gitTry(['fsck', '--full', '--strict'], { cwd: s }).status, 0);
  }
  return s;
}

test('the launcher runs on the Bun that npm ci installed, else on Node', () => {
  const shebang = readFileSync(LAUNCHER, 'utf8').split('\n')[0];
  const bun = findBun(ROOT);
  if (process.env.SNAPCLONE_RUNTIME === 'node' || bun === null) assert.equal(shebang, '#!/usr/bin/env node');
  else assert.equal(shebang, bunShebang(bun));
});

test('the launcher loads the front bundle only while it is as new as every file it was made from', { skip: findBun(ROOT) === null && 'no Bun' }, async () => {
  // A launcher over stand-in files that say which one ran; an incremental emit touches one bundled input, not main.js.
  const dir = join(work, 'fresh');
  mkdirSync(join(dir, 'bin'), { recursive: true });
  mkdirSync(join(dir, 'dist/src/cli'), { recursive: true });
  const cli = (f: string) => join(dir, 'dist/src/cli', f);
  for (const f of ['main.js', 'clone-cmd.js', 'help.js']) writeFileSync(cli(f), f === 'main.js' ? 'console.log("main")\n' : '');
  writeFileSync(cli('main.front.js'), 'console.log("front")\n');
  writeFileSync(join(dir, 'bin/snapclone'), launcherText(findBun(ROOT), ['clone-cmd.js', 'help.js', 'main.js']));
  chmodSync(join(dir, 'bin/snapclone'), 0o755);
  const at = (f: string, s: number) => utimesSync(cli(f), s, s);
  const which = () => new Promise<string>((r) => execFile(join(dir, 'bin/snapclone'), [], (_e, out) => r(String(out).trim())));
  for (const f of ['main.js', 'clone-cmd.js', 'help.js']) at(f, 1_000_000);
  at('main.front.js', 1_000_010);
  assert.equal(await which(), 'front');
  at('help.js', 1_000_020);
  assert.equal(await which(), 'main');
});

/**
 * A directory of another project, as users clone from: Bun would read its
 * bunfig.toml (preload runs code) and its .env files. Each hook leaves a file
 * in `marks` if it ever runs.
 */
function hostileDir(name: string, env: string): { dir: string; marks: string } {
  const dir = join(work, name);
  const marks = join(dir, 'marks');
  mkdirSync(marks, { recursive: true });
  writeFileSync(join(dir, 'pre.js'), `require('node:fs').writeFileSync(${JSON.stringify(join(marks, 'preload'))}, '');\n`);
  writeFileSync(join(dir, 'bunfig.toml'), 'preload = ["./pre.js"]\n[run]\nbun = true\n');
  writeFileSync(join(dir, 'node-options.cjs'), `require('node:fs').writeFileSync(${JSON.stringify(join(marks, 'node-options'))}, '');\n`);
  writeFileSync(join(dir, '.env'), env);
  writeFileSync(join(dir, '.env.local'), `NODE_OPTIONS=--require=${join(dir, 'node-options.cjs')}\n`);
  writeFileSync(join(dir, '.env.production'), env);
  return { dir, marks };
}

const marksIn = (marks: string) => ['preload', 'node-options'].filter((m) => existsSync(join(marks, m)));

test('from a cwd holding bunfig.toml (preload) and .env files, the launcher runs none of it and takes no variable from it', async () => {
  // A server that counts what reaches it: the .env points SNAPCLONE_SERVER there.
  const hits: string[] = [];
  const evil = createHttpServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
  try {
    const evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}`;
    const a = hostileDir('hostile-server', `SNAPCLONE_SERVER=${evilUrl}\nSNAPCLONE_TOKEN=leaked\n`);
    const version = await launch(['--version'], {}, a.dir);
    assert.equal(version.code, 0, version.stderr);
    // No SNAPCLONE_SERVER of our own: a leaked one would be used; the default (nothing listening, or not our evil server) is.
    await launch(['clone', 'fx/parity', join(work, 'hostile-default')], { SNAPCLONE_SERVER: undefined, SNAPCLONE_CONNECT_TIMEOUT_MS: undefined }, a.dir);
    assert.deepEqual(hits, []);
    assert.deepEqual(marksIn(a.marks), []);

    // A variable the clone checks: leaked, it would be a usage error (exit 2); the clone must instead equal git clone.
    const b = hostileDir('hostile-timeout', 'SNAPCLONE_CONNECT_TIMEOUT_MS=banana\n');
    const target = join(work, 'hostile-clone');
    const r = await launch(['clone', 'fx/parity', target], {}, b.dir);
    assert.equal(r.code, 0, r.stderr);
    const g = join(work, 'hostile-git');
    assert.equal(gitTry(['clone', '--quiet', up.url, g], { cwd: work }).status, 0);
    assert.deepEqual(compareClones(g, target, { mode: 'editable' }), []);
    assert.deepEqual(marksIn(b.marks), []);
  } finally {
    await new Promise<void>((r) => evil.close(() => r()));
  }
});

test('full clone through the launcher equals git clone', async () => {
  await parity([], []);
});

test('--depth 1 through the launcher equals git clone --depth 1', async () => {
  await parity(['--depth', '1'], ['--depth', '1']);
});

test('--mode files through the launcher equals the work tree of git clone', async () => {
  await parity([], [], 'files');
});

// The client runs from chunks of the front bundle in dist/src/cli; writer threads start from dist/src/client/worker.js (pool.ts).
test('with writer threads, full, --depth 1 and files clones through the launcher equal git clone', async () => {
  const threads = { SNAPCLONE_WORKERS: '2' };
  await parity([], [], 'editable', threads);
  await parity(['--depth', '1'], ['--depth', '1'], 'editable', threads);
  await parity([], [], 'files', threads);
});

test('--branch through the launcher equals git clone --branch', async () => {
  await parity(['--branch', 'dev'], ['--branch', 'dev']);
});

test('exit codes through the launcher: unknown repository 3, unknown branch 3, bad usage 2, non-empty target 8, unreachable 4', async () => {
  const unknown = await launch(['clone', 'fx/nope', join(work, 'nope')]);
  assert.equal(unknown.code, 3, unknown.stderr);
  assert.match(unknown.stderr, /^snapclone: .*fx\/nope/m);
  assert.ok(!existsSync(join(work, 'nope')), 'a failed clone leaves nothing');
  const branch = await launch(['clone', 'fx/parity', join(work, 'nobranch'), '--branch', 'no-such-branch']);
  assert.equal(branch.code, 3, branch.stderr);
  for (const args of [['clone'], ['clone', 'fx/parity', join(work, 'd2'), '--depth', '2'], ['clone', 'fx/parity', '--mode', 'bare'], ['frobnicate']]) {
    const r = await launch(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^snapclone: /);
  }
  const taken = await launch(['clone', 'fx/parity', work]); // holds the upstream and the data dir
  assert.equal(taken.code, 8, taken.stderr);
  const closed = await freePort();
  const unreachable = await launch(['clone', 'fx/parity', join(work, 'unreachable'), '--server', `http://127.0.0.1:${closed}`]);
  assert.equal(unreachable.code, 4, unreachable.stderr);
});

test('a server URL holding a password is refused through the launcher (exit 2), the secret not shown', async () => {
  const r = await launch(['clone', 'fx/parity', join(work, 'secret'), '--server', 'http://u:hunter2@127.0.0.1:1']);
  assert.equal(r.code, 2, r.stderr);
  assert.doesNotMatch(r.stderr, /hunter2/);
});

test('help and version through the launcher are the CLI\'s own', async () => {
  const help = await launch(['--help']);
  assert.equal(help.code, 0);
  assert.equal(help.stdout, HELP);
  const clone = await launch(['help', 'clone']);
  assert.equal(clone.code, 0);
  assert.equal(clone.stdout, COMMAND_HELP.clone);
  const bare = await launch([]);
  assert.equal(bare.code, 2);
  assert.equal(bare.stdout, HELP);
  const version = await launch(['--version']);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal(version.stdout, `snapclone ${pkg.version}\n`);
});

test('serve through the launcher runs on Node in the same process, answers, and stops on SIGTERM; a hostile cwd reaches neither Bun nor Node', async () => {
  const port = await freePort();
  // NODE_OPTIONS from .env.local would run code in Node after the execve, a preload in Bun before it.
  const h = hostileDir('hostile-serve', 'SNAPCLONE_LOG=debug\n');
  const child = spawn(LAUNCHER, ['serve', '--port', String(port), '--data-dir', join(work, 'served')], { cwd: h.dir, env: { ...hermeticEnv(), SNAPCLONE_LOG: 'warn', NODE_OPTIONS: undefined }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    let healthy = false;
    for (let i = 0; i < 300 && !healthy && child.exitCode === null; i++) {
      healthy = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
      if (!healthy) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(healthy, `the server did not come up: ${stderr}`);
    // The pid the launcher started is now Node's (execve), so signals and the data-dir lock's pid are the server's own.
    assert.match(basename(readlinkSync(`/proc/${child.pid}/exe`)), /^node/);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, stderr);
  assert.deepEqual(marksIn(h.marks), []);
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
