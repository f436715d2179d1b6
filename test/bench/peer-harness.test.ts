/**
 * The peer runner's own parts that need no peer: the HTTPS smart-HTTP upstream
 * (https-git.ts, what cachew is pointed at), the peak-RSS probe (rusage.ts) and
 * --peer parsing. Real git, real TLS, real processes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHttpsGit } from '../../bench/https-git.js';
import { haveTime, withRss } from '../../bench/rusage.js';
import { parsePeer } from '../../bench/peers.js';
import { must, timed } from '../../bench/lib.js';

const git = (args: string[], cwd?: string) => execFileSync('git', args, { cwd, encoding: 'utf8', env: { ...process.env, GIT_SSL_NO_VERIFY: '1' } }).trim();

/** Async, because the server under test runs in this process (execFileSync would block its event loop). */
const agit = async (args: string[], cwd?: string) => (await must(['git', ...(cwd ? ['-C', cwd] : []), ...args], { env: { ...process.env, GIT_SSL_NO_VERIFY: '1' } })).stdout.trim();

function bareRepo(dir: string): { bare: string; head: string } {
  const work = join(dir, 'work');
  mkdirSync(work);
  git(['init', '-q', '-b', 'main'], work);
  writeFileSync(join(work, 'a.txt'), 'hello\n');
  mkdirSync(join(work, 'd'));
  writeFileSync(join(work, 'd', 'b.txt'), 'x'.repeat(100_000));
  git(['add', '-A'], work);
  git(['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-m', 'one'], work);
  git(['tag', 'v1'], work);
  const bare = join(dir, 'up.git');
  git(['clone', '-q', '--bare', work, bare]);
  return { bare, head: git(['rev-parse', 'HEAD'], work) };
}

test('https-git serves a bare repository to git clone over TLS, under <name>.git and <name>', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'https-git-'));
  const { bare, head } = bareRepo(dir);
  const srv = await startHttpsGit(bare, 'up', join(dir, 'srv'));
  try {
    assert.match(srv.url, /^https:\/\/127\.0\.0\.1:\d+\/up\.git$/);
    for (const url of [srv.url, srv.url.replace(/\.git$/, '')]) {
      const target = join(dir, `clone-${url.endsWith('.git') ? 'a' : 'b'}`);
      await agit(['clone', '-q', url, target]);
      assert.equal(await agit(['rev-parse', 'HEAD'], target), head);
      assert.equal(await agit(['tag'], target), 'v1');
      assert.equal(await agit(['status', '--porcelain'], target), '');
      await agit(['fsck', '--strict'], target);
    }
    // Plain HTTPS without skipping verification must refuse the self-signed certificate.
    const env = { ...process.env };
    delete env.GIT_SSL_NO_VERIFY;
    const r = await timed(['git', 'ls-remote', srv.url], { env });
    assert.notEqual(r.code, 0);
  } finally {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('withRss reports the peak RSS of a command and its children, and keeps its exit code', { skip: !haveTime && 'no /usr/bin/time' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rss-'));
  try {
    // A child that holds ~64 MiB: the probe must see at least that.
    const p = withRss([process.execPath, '-e', 'const b = Buffer.alloc(64 << 20, 1); process.exitCode = b[0] + 2;'], dir);
    const t = await timed(p.argv);
    assert.equal(t.code, 3);
    const rss = p.read();
    assert.ok(rss >= 64 * 2 ** 20, `peak RSS ${rss}`);
    assert.ok(Number.isNaN(p.read()), 'read() consumes the probe file');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('parsePeer takes KIND=DIR for known peers whose binaries exist', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peer-'));
  try {
    assert.throws(() => parsePeer('nope=/x'), /--peer wants/);
    assert.throws(() => parsePeer(`ripclone=${dir}`), /ripclone does not exist/);
    for (const b of ['cachew', 'cachewd']) writeFileSync(join(dir, b), '');
    assert.deepEqual(parsePeer(`cachew=${dir}`), { kind: 'cachew', dir });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the delaying proxy carries both directions intact and in order, half-close included', async () => {
  const { createServer, connect } = await import('node:net');
  const { startDelayProxy } = await import('../../bench/delay-proxy.js');
  const { randomBytes } = await import('node:crypto');
  // An echo server that answers only after the client finished sending (half-close).
  const echo = createServer({ allowHalfOpen: true }, (s) => {
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('end', () => s.end(Buffer.concat(parts)));
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const proxy = await startDelayProxy((echo.address() as { port: number }).port, 10);
  try {
    const sent = randomBytes(8 << 20);
    const got = await new Promise<Buffer>((resolve, reject) => {
      const c = connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true });
      const parts: Buffer[] = [];
      c.on('data', (d: Buffer) => parts.push(d));
      c.on('end', () => resolve(Buffer.concat(parts)));
      c.on('error', reject);
      c.end(sent);
    });
    assert.equal(got.length, sent.length);
    assert.ok(got.equals(sent));
  } finally {
    await proxy.stop();
    await new Promise<void>((r) => echo.close(() => r()));
  }
});
