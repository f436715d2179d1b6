/**
 * clone() against a hostile or broken server of our own: every failure must be
 * a SnapError with the right code, and leave neither the target nor a staging
 * directory behind, nor anything written outside the target.
 */
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { compress } from 'zstd-napi';
import { clone } from '../../src/client/clone.js';
import { MODE_EXEC, MODE_GITLINK, MODE_SYMLINK, type TableEntry } from '../../src/clonepack/filetable.js';
import { LIMITS, type Manifest } from '../../src/clonepack/manifest.js';
import { SnapError, type ErrorCode } from '../../src/util/errors.js';
import { cloneDirs, COMMIT, FakeServer, leftovers, makeClonepack, publish, sha256, type FileSpec } from './fake-server.js';
import { captureReports, type Report } from './reports.js';

let server: FakeServer;
let dirs: ReturnType<typeof cloneDirs>;
let reports: Report[];

before(async () => {
  server = await FakeServer.start();
  reports = captureReports(server);
});
after(async () => {
  await server.close();
});
beforeEach(() => {
  server.artifacts.clear();
  server.jobs.clear();
  server.resolveHandler = null;
  server.requests.length = 0;
  reports.length = 0;
  dirs = cloneDirs();
  mkdirSync(dirs.parent, { recursive: true });
  mkdirSync(dirs.outside, { recursive: true });
});
afterEach(() => {
  dirs.cleanup();
});

const FILES: FileSpec[] = [
  { path: 'README.md', content: '# demo\n' },
  { path: 'bin/run', mode: MODE_EXEC, content: '#!/bin/sh\necho hi\n' },
  { path: 'empty', content: '' },
  { path: 'src/big.txt', content: 'x'.repeat(4969) + 'END' }, // stream bytes 25..4996
  { path: 'src/link', mode: MODE_SYMLINK, content: 'big.txt' }, // 4997..5003: spans the chunk boundary at 5000
  { path: 'sub', mode: MODE_GITLINK },
  { path: Buffer.from([0x7a, 0xff, 0x2e, 0x74]), content: 'latin1 name\n' },
];

function cloneOpts(extra: Record<string, unknown> = {}) {
  return { server: server.url, name: 'demo', dir: dirs.target, mode: 'files' as const, waitTimeoutMs: 10_000, ...extra };
}

function isSnap(code: ErrorCode | ErrorCode[]) {
  const codes = Array.isArray(code) ? code : [code];
  return (e: unknown) => {
    assert.ok(e instanceof SnapError, `expected a SnapError(${codes.join('|')}), got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    assert.ok(codes.includes(e.code), `expected code ${codes.join('|')}, got ${e.code}: ${e.message}`);
    return true;
  };
}

/** Nothing but what the test put there: no target, no staging dir, nothing written outside. */
function assertNothingLeft(): void {
  assert.equal(existsSync(dirs.target), false, 'target exists after a failed clone');
  assert.deepEqual(leftovers(dirs.parent), [], 'staging dir left behind');
  assert.deepEqual(readdirSync(dirs.parent), [], 'parent is not empty');
  assert.deepEqual(readdirSync(dirs.outside), [], 'something was written outside');
  assert.deepEqual(readdirSync(dirs.root).sort(), ['outside', 'parent']);
}

/** The clone must fail; cleanup is checked first, then that the error is a SnapError with the right code. */
async function expectFailure(code: ErrorCode | ErrorCode[], opts: Record<string, unknown> = {}, alsoCheck?: () => void): Promise<void> {
  let error: unknown = null;
  try {
    await clone(cloneOpts(opts));
  } catch (err) {
    error = err;
  }
  assert.ok(error, 'clone succeeded but should have failed');
  assertNothingLeft();
  alsoCheck?.();
  isSnap(code)(error);
}

test('baseline: a well-formed clonepack clones (so the failures below fail for their own reason)', async () => {
  const pack = makeClonepack(FILES, { chunkRawBytes: 1000 }); // big.txt spans several chunks
  assert.ok(pack.chunkDigests.length > 3);
  publish(server, pack);
  const result = await clone(cloneOpts());
  assert.equal(result.commit, COMMIT);
  assert.equal(result.ref, 'refs/heads/main');
  const t = dirs.target;
  assert.equal(readFileSync(join(t, 'README.md'), 'utf8'), '# demo\n');
  assert.equal(readFileSync(join(t, 'src/big.txt'), 'utf8'), 'x'.repeat(4969) + 'END');
  assert.equal(readFileSync(join(t, 'empty')).length, 0);
  assert.equal(readlinkSync(join(t, 'src/link')), 'big.txt');
  assert.ok(statSync(join(t, 'bin/run')).mode & 0o100, 'bin/run is executable');
  assert.equal(statSync(join(t, 'README.md')).mode & 0o111, 0);
  assert.ok(statSync(join(t, 'sub')).isDirectory());
  assert.deepEqual(readdirSync(join(t, 'sub')), []);
  assert.equal(readFileSync(Buffer.from(t + '/z\xff.t', 'latin1')).toString(), 'latin1 name\n');
  assert.equal(existsSync(join(t, '.git')), false);
  assert.deepEqual(leftovers(dirs.parent), []);
  assert.deepEqual(readdirSync(dirs.outside), []);
});

test('cloning into an existing empty directory fills it in place: same inode, mode and owner (as git clone does)', async () => {
  publish(server, makeClonepack(FILES));
  mkdirSync(dirs.target, { mode: 0o750 });
  chmodSync(dirs.target, 0o750);
  const root = process.getuid?.() === 0; // only root can give the directory another owner
  if (root) chownSync(dirs.target, 4242, 4343);
  const before = statSync(dirs.target);
  try {
    await clone(cloneOpts());
  } finally {
    assert.deepEqual(leftovers(dirs.parent), [], 'staging dir left behind');
  }
  const after = statSync(dirs.target);
  assert.equal(after.ino, before.ino, 'the directory was replaced');
  assert.equal(after.mode & 0o7777, 0o750);
  if (root) assert.deepEqual([after.uid, after.gid], [4242, 4343]);
  assert.equal(readFileSync(join(dirs.target, 'README.md'), 'utf8'), '# demo\n');
  assert.deepEqual(stagingDirs(dirs.target), []);
  assert.deepEqual(readdirSync(dirs.parent), ['target']);
});

test('a failed clone into an existing empty directory leaves it empty and in place', async () => {
  const pack = makeClonepack(FILES, { chunkRawBytes: 1000 });
  publish(server, pack);
  const d = pack.chunkDigests[3]!;
  server.artifacts.set(d, Buffer.alloc(pack.artifacts.get(d)!.length, 7));
  mkdirSync(dirs.target);
  const ino = statSync(dirs.target).ino;
  await assert.rejects(clone(cloneOpts()), isSnap('integrity'));
  assert.equal(statSync(dirs.target).ino, ino);
  assert.deepEqual(readdirSync(dirs.target), []);
  assert.deepEqual(readdirSync(dirs.parent), ['target']);
});

test('a symlink to an empty directory is filled through the symlink, as git does; the symlink stays', async () => {
  publish(server, makeClonepack(FILES));
  const link = join(dirs.parent, 'alink');
  symlinkSync(dirs.outside, link);
  const result = await clone(cloneOpts({ dir: link }));
  assert.equal(lstatSync(link).isSymbolicLink(), true);
  assert.equal(readFileSync(join(dirs.outside, 'README.md'), 'utf8'), '# demo\n');
  assert.equal(readlinkSync(join(dirs.outside, 'src/link')), 'big.txt');
  assert.deepEqual(stagingDirs(dirs.outside), []);
  assert.deepEqual(readdirSync(dirs.parent), ['alink']);
  assert.ok(result.files > 0);
});

test('a failed clone through a symlinked target leaves the directory it points to empty', async () => {
  const pack = makeClonepack(FILES);
  publish(server, pack);
  server.artifacts.delete(pack.tableDigest);
  const link = join(dirs.parent, 'alink');
  symlinkSync(dirs.outside, link);
  await assert.rejects(clone(cloneOpts({ dir: link })), isSnap('artifact-missing'));
  assert.deepEqual(readdirSync(dirs.outside), []);
  assert.equal(lstatSync(link).isSymbolicLink(), true);
});

test('a failed clone removes the parent directories it created', async () => {
  const pack = makeClonepack(FILES);
  publish(server, pack);
  const d = pack.chunkDigests[0]!;
  server.artifacts.set(d, Buffer.alloc(pack.artifacts.get(d)!.length, 7));
  await assert.rejects(clone(cloneOpts({ dir: join(dirs.parent, 'a', 'b', 'target') })), isSnap('integrity'));
  assert.deepEqual(readdirSync(dirs.parent), []);
});

/** Staging directories (finished or not) inside a target. */
function stagingDirs(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith('.snapclone-staging-'));
}

/** The pid of a process that has exited (and, this soon after, not been reused). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

test("staging directories of clones that died (SIGKILL) are removed by the next clone; a running clone's are respected", async () => {
  publish(server, makeClonepack(FILES));
  const myStart = readFileSync('/proc/self/stat', 'latin1').split(') ')[1]!.split(' ')[19]!;
  // A dead pid, and a live pid whose start time shows it is another process (a recycled pid).
  for (const name of [`.snapclone-staging-${deadPid()}-123-0123456789ab`, `.snapclone-staging-${process.pid}-${Number(myStart) + 1}-0123456789ab`, `.snapclone-staging-${deadPid()}-x-0123456789ab`]) {
    mkdirSync(join(dirs.target, name, 'src'), { recursive: true });
    writeFileSync(join(dirs.target, name, 'src', 'half-written'), 'x'.repeat(1000));
    await clone(cloneOpts());
    assert.deepEqual(stagingDirs(dirs.target), [], name);
    assert.equal(readFileSync(join(dirs.target, 'README.md'), 'utf8'), '# demo\n');
    rmSync(dirs.target, { recursive: true });
  }
  // A live clone (this very process, same start time) is writing there: refuse, touch nothing.
  const live = `.snapclone-staging-${process.pid}-${myStart}-0123456789ab`;
  mkdirSync(join(dirs.target, live), { recursive: true });
  await assert.rejects(clone(cloneOpts()), (e: unknown) => isSnap('target-exists')(e) && /another snapclone \(pid \d+\) is cloning into/.test((e as Error).message));
  assert.deepEqual(readdirSync(dirs.target), [live]);
  // Something merely named like a staging dir is the user's: the target is not empty.
  rmSync(join(dirs.target, live), { recursive: true });
  mkdirSync(join(dirs.target, '.snapclone-staging-mine'));
  await assert.rejects(clone(cloneOpts()), isSnap('target-exists'));
  assert.deepEqual(readdirSync(dirs.target), ['.snapclone-staging-mine']);
});

test('manifest bytes that do not match the digest: integrity, not retried', async () => {
  const pack = makeClonepack(FILES);
  const { digest, bytes } = publish(server, pack);
  const forged = Buffer.from(bytes);
  forged[forged.length - 2] ^= 1;
  server.artifacts.set(digest, forged);
  await expectFailure('integrity');
  assert.equal(server.hits(digest), 1, 'an integrity failure must not be retried');
});

test('table bytes that do not match the digest (after staging exists): integrity', async () => {
  const pack = makeClonepack(FILES);
  publish(server, pack);
  const z = pack.artifacts.get(pack.tableDigest)!;
  server.artifacts.set(pack.tableDigest, Buffer.concat([z.subarray(0, -1), Buffer.from([z[z.length - 1]! ^ 0xff])]));
  await expectFailure('integrity');
  assert.equal(server.hits(pack.tableDigest), 1);
});

test('archive chunk bytes that do not match the digest: integrity', async () => {
  const pack = makeClonepack(FILES, { chunkRawBytes: 1000 });
  publish(server, pack);
  const d = pack.chunkDigests[2]!;
  server.artifacts.set(d, Buffer.alloc(pack.artifacts.get(d)!.length, 7));
  await expectFailure('integrity');
});

test("an artifact shorter than announced: integrity, the server's copy is truncated, reported", async () => {
  const pack = makeClonepack(FILES);
  publish(server, pack);
  const z = pack.artifacts.get(pack.tableDigest)!;
  server.artifacts.set(pack.tableDigest, z.subarray(0, z.length - 3)); // complete response, Content-Length of the short body
  await expectFailure('integrity', {}, () => assert.equal(server.hits(pack.tableDigest), 1, 'not retried'));
  assert.deepEqual(reports, [{ digest: pack.tableDigest, body: { problem: 'truncated' } }]);
});

test('a Content-Length that differs from the manifest fails before the body is read', async () => {
  const pack = makeClonepack(FILES);
  publish(server, pack);
  const z = pack.artifacts.get(pack.tableDigest)!;
  for (const [length, what] of [[z.length - 3, 'truncated'], [z.length + 5, 'larger than the manifest says']] as const) {
    reports.length = 0;
    // Headers only: a client that waited for the body would wait forever.
    server.artifacts.set(pack.tableDigest, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': length });
      res.flushHeaders();
    });
    let error: unknown;
    await clone(cloneOpts()).catch((e: unknown) => (error = e));
    isSnap('integrity')(error);
    assert.equal((error as Error).message, `the server's copy of artifact ${pack.tableDigest.slice(0, 12)} is ${what}: ${length} of ${z.length} bytes`);
    assertNothingLeft();
    assert.equal(reports.length, 1);
    assert.equal(reports[0]!.digest, pack.tableDigest);
  }
});

test('a chunked response that ends short: integrity (truncated), reported', async () => {
  const pack = makeClonepack(FILES);
  publish(server, pack);
  const z = pack.artifacts.get(pack.tableDigest)!;
  server.artifacts.set(pack.tableDigest, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' }); // no Content-Length: chunked
    res.end(z.subarray(0, z.length - 1));
  });
  await expectFailure('integrity');
  assert.deepEqual(reports, [{ digest: pack.tableDigest, body: { problem: 'truncated' } }]);
});

test('a digest mismatch is reported to the server once, even when several downloads of it fail', async () => {
  const pack = makeClonepack(FILES, { chunkRawBytes: 1000 });
  publish(server, pack);
  const d = pack.chunkDigests[1]!;
  server.artifacts.set(d, Buffer.alloc(pack.artifacts.get(d)!.length, 7));
  await expectFailure('integrity');
  assert.deepEqual(reports, [{ digest: d, body: { problem: 'digest-mismatch' } }]);
});

test('a manifest shorter than resolve announced fails', async () => {
  const pack = makeClonepack(FILES);
  const { bytes } = publish(server, pack);
  const answer = server.resolveAnswer.body as { manifest: { size: number } };
  answer.manifest.size = bytes.length + 10;
  await expectFailure(['integrity', 'unreachable']);
});

test('an artifact longer than announced: integrity', async () => {
  const pack = makeClonepack(FILES);
  publish(server, pack);
  const z = pack.artifacts.get(pack.tableDigest)!;
  server.artifacts.set(pack.tableDigest, Buffer.concat([z, Buffer.alloc(100)]));
  await expectFailure('integrity');
});

test('a manifest with an unknown version: invalid', async () => {
  const pack = makeClonepack(FILES);
  publish(server, { ...pack, manifest: { ...pack.manifest, version: 2 } });
  await expectFailure('invalid');
});

test('a manifest with an unknown field: invalid', async () => {
  const pack = makeClonepack(FILES);
  publish(server, { ...pack, manifest: { ...pack.manifest, hooks: { postCheckout: 'rm -rf /' } } });
  await expectFailure('invalid');
});

test('a manifest that does not describe what resolve named: integrity', async () => {
  const pack = makeClonepack(FILES);
  publish(server, pack, { commit: 'f'.repeat(40) });
  await expectFailure('integrity');
  publish(server, pack, { ref: 'refs/heads/other' });
  await expectFailure('integrity');
});

test('a malformed resolve answer: invalid', async () => {
  const pack = makeClonepack(FILES);
  publish(server, pack, { manifest: { digest: '../../etc/passwd', size: 10 } });
  await expectFailure('invalid');
});

test('a table with a ../escape path is refused and nothing is written outside', async () => {
  const pack = makeClonepack([
    { path: '../escape', content: 'pwned\n' },
    { path: '../../escape2', content: 'pwned\n' },
  ]);
  publish(server, pack);
  await expectFailure('invalid');
  assert.equal(existsSync(join(dirs.root, 'escape')), false);
  assert.equal(existsSync(join(dirs.root, '..', 'escape2')), false);
});

test('a table with an absolute path or a .git path is refused', async () => {
  for (const path of [join(dirs.outside, 'abs'), '.git/hooks/post-checkout', 'a/.GIT/config']) {
    server.artifacts.clear();
    publish(server, makeClonepack([{ path, content: 'x' }]));
    await expectFailure('invalid');
  }
});

test('a symlink "link" followed by a file "link/x" is refused', async () => {
  const pack = makeClonepack([
    { path: 'link', mode: MODE_SYMLINK, content: dirs.outside },
    { path: 'link/x', content: 'written through the link\n' },
  ]);
  publish(server, pack);
  await expectFailure('invalid');
  assert.equal(existsSync(join(dirs.outside, 'x')), false);
});

test('a symlink pointing outside is created as a symlink and never followed', async () => {
  const pack = makeClonepack([{ path: 'link', mode: MODE_SYMLINK, content: dirs.outside }]);
  publish(server, pack);
  await clone(cloneOpts());
  const link = join(dirs.target, 'link');
  assert.ok(lstatSync(link).isSymbolicLink());
  assert.equal(readlinkSync(link), dirs.outside);
  assert.deepEqual(readdirSync(dirs.outside), [], 'nothing may be written through the symlink');
  assert.deepEqual(leftovers(dirs.parent), []);
});

test('a symlink with an empty target: invalid', async () => {
  publish(server, makeClonepack([{ path: 'a', content: 'a' }, { path: 'l', mode: MODE_SYMLINK, content: '' }]));
  await expectFailure('invalid');
});

test('a symlink target containing a NUL byte fails with a SnapError', async () => {
  publish(server, makeClonepack([{ path: 'l', mode: MODE_SYMLINK, content: Buffer.from('abc\0def') }]));
  await expectFailure(['invalid', 'integrity']);
});

test('an archive chunk whose declared content size differs from rawSize: integrity', async () => {
  const pack = makeClonepack([{ path: 'f', content: '0123456789a' }]);
  // The chunk claims 11 raw bytes (as the table needs) but its frame declares 10.
  const z = compress(Buffer.from('0123456789'));
  pack.artifacts.delete(pack.chunkDigests[0]!);
  pack.artifacts.set(sha256(z), z);
  pack.manifest.archive.chunks = [{ digest: sha256(z), size: z.length, rawSize: 11 }];
  publish(server, pack);
  await expectFailure('integrity');
});

test('one bad chunk among many: the other writers stop, nothing reappears afterwards', async () => {
  const files: FileSpec[] = Array.from({ length: 60 }, (_, i) => ({ path: `d${i % 4}/f${String(i).padStart(3, '0')}`, content: `${i}:`.padEnd(700, String(i % 10)) }));
  files.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  const pack = makeClonepack(files, { chunkRawBytes: 1000 });
  assert.ok(pack.manifest.archive.chunks.length >= 40);
  // Chunk 20's frame declares one byte fewer than the manifest says.
  const c = pack.manifest.archive.chunks[20]!;
  const raw = Buffer.concat(files.map((f) => Buffer.from(f.content!))).subarray(20 * 1000, 20 * 1000 + c.rawSize - 1);
  const z = compress(raw);
  pack.artifacts.set(sha256(z), z);
  pack.manifest.archive.chunks[20] = { digest: sha256(z), size: z.length, rawSize: c.rawSize };
  publish(server, pack);
  await expectFailure('integrity');
  await new Promise((r) => setTimeout(r, 300));
  assertNothingLeft();
});

test('an archive chunk without a declared content size: integrity', async () => {
  const content = Buffer.from('hello world\n');
  const pack = makeClonepack([{ path: 'f', content }]);
  const z = compress(content, { contentSizeFlag: false } as Parameters<typeof compress>[1]);
  pack.artifacts.delete(pack.chunkDigests[0]!);
  pack.artifacts.set(sha256(z), z);
  pack.manifest.archive.chunks = [{ digest: sha256(z), size: z.length, rawSize: content.length }];
  publish(server, pack);
  await expectFailure('integrity');
});

test('an archive chunk of two frames (more bytes than it declares): integrity', async () => {
  const content = Buffer.from('0123456789');
  const pack = makeClonepack([{ path: 'f', content }]);
  const z = Buffer.concat([compress(content), compress(Buffer.from('extra bytes'))]);
  pack.artifacts.delete(pack.chunkDigests[0]!);
  pack.artifacts.set(sha256(z), z);
  pack.manifest.archive.chunks = [{ digest: sha256(z), size: z.length, rawSize: content.length }];
  publish(server, pack);
  await expectFailure('integrity');
});

test('an archive chunk with a valid header but corrupt data fails with a SnapError', async () => {
  const content = Buffer.from('a'.repeat(300) + 'b'.repeat(300));
  const pack = makeClonepack([{ path: 'f', content }]);
  const z = Buffer.from(compress(content));
  z.fill(0xee, 8); // keep magic + header (declared size 600), corrupt the blocks
  pack.artifacts.delete(pack.chunkDigests[0]!);
  pack.artifacts.set(sha256(z), z);
  pack.manifest.archive.chunks = [{ digest: sha256(z), size: z.length, rawSize: content.length }];
  publish(server, pack);
  await expectFailure(['integrity', 'invalid']);
});

test('a table with a valid header but corrupt zstd data fails with a SnapError', async () => {
  const pack = makeClonepack(FILES);
  const z = Buffer.from(pack.artifacts.get(pack.tableDigest)!);
  z.fill(0xee, 8);
  pack.artifacts.delete(pack.tableDigest);
  pack.artifacts.set(sha256(z), z);
  pack.manifest.table = { ...pack.manifest.table, digest: sha256(z), size: z.length };
  publish(server, pack);
  await expectFailure(['integrity', 'invalid']);
});

test('a table whose files need more bytes than the archive holds: integrity', async () => {
  const pack = makeClonepack([{ path: 'a', content: 'aaaa' }, { path: 'b', content: 'bbbb' }], { chunkRawBytes: 4 });
  pack.manifest.archive = { codec: 'zstd', bytes: 4, chunks: pack.manifest.archive.chunks.slice(0, 1) };
  publish(server, pack);
  await expectFailure('integrity');
});

test('a server that closes the connection mid-body and ignores Range: retried 5 times, then unreachable', async () => {
  const pack = makeClonepack(FILES);
  publish(server, pack);
  const z = pack.artifacts.get(pack.tableDigest)!;
  server.artifacts.set(pack.tableDigest, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': z.length });
    res.write(z.subarray(0, Math.floor(z.length / 2)));
    setTimeout(() => res.socket?.destroy(), 20);
  });
  await expectFailure('unreachable', {}, () =>
    assert.equal(server.hits(pack.tableDigest), 5, `the download was tried ${server.hits(pack.tableDigest)} time(s)`),
  );
});

test('a server that resets the connection before answering: unreachable', async () => {
  const pack = makeClonepack(FILES);
  publish(server, pack);
  server.artifacts.set(pack.tableDigest, (_req, res) => res.socket?.destroy());
  await expectFailure('unreachable');
  assert.ok(server.hits(pack.tableDigest) >= 2);
});

test('a server answering 500 for an artifact: retried, then unreachable', async () => {
  const pack = makeClonepack(FILES);
  publish(server, pack);
  server.artifacts.set(pack.tableDigest, (_req, res) => {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end('oops');
  });
  await expectFailure('unreachable');
  assert.ok(server.hits(pack.tableDigest) >= 2);
});

test('a missing artifact: artifact-missing (exit 12), not retried, reported', async () => {
  const pack = makeClonepack(FILES);
  publish(server, pack);
  server.artifacts.delete(pack.tableDigest);
  await expectFailure('artifact-missing', {}, () => assert.equal(server.hits(pack.tableDigest), 1, 'not retried'));
  let error: unknown;
  try {
    await clone(cloneOpts());
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof SnapError);
  assert.equal(error.exitCode, 12);
  assert.match(error.message, new RegExp(`the server is missing artifact ${pack.tableDigest.slice(0, 12)} `));
  assert.deepEqual(reports.map((r) => r.body), [{ problem: 'missing' }, { problem: 'missing' }]);
});

test('a server that is down entirely: unreachable', async () => {
  const port = await new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  await expectFailure('unreachable', { server: `http://127.0.0.1:${port}` });
});

test('a server that closes the connection in the middle of the resolve answer: unreachable', async () => {
  publish(server, makeClonepack(FILES));
  const body = Buffer.from(JSON.stringify(server.resolveAnswer.body));
  server.resolveHandler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.write(body.subarray(0, 20));
    setTimeout(() => res.socket?.destroy(), 20);
  };
  await expectFailure('unreachable');
});

test('resolve announcing a manifest over the size limit is refused before downloading it', async () => {
  const { digest, bytes } = publish(server, makeClonepack(FILES));
  (server.resolveAnswer.body as { manifest: { size: number } }).manifest.size = LIMITS.maxManifestBytes + 1;
  // Were the client to ask, it would get a stream of that many bytes; answer the real bytes instead and count.
  server.artifacts.set(digest, bytes);
  await expectFailure(['invalid', 'integrity']);
  assert.equal(server.hits(digest), 0, 'the oversize manifest was requested');
});

test('resolve announcing a negative, fractional or absurd manifest size: a SnapError, nothing downloaded', async () => {
  for (const size of [-1, 1.5, 2 ** 60, Number.MAX_SAFE_INTEGER + 2]) {
    const { digest } = publish(server, makeClonepack(FILES));
    (server.resolveAnswer.body as { manifest: { size: number } }).manifest.size = size;
    server.requests.length = 0;
    await expectFailure(['invalid', 'integrity'], {}, () => assert.equal(server.hits(digest), 0, `size ${size}: manifest requested`));
  }
});

test('a manifest announcing a 5 GiB table (within manifest limits) that is really small: a SnapError', async () => {
  const pack = makeClonepack(FILES);
  pack.manifest.table = { ...pack.manifest.table, size: 5 * 2 ** 30 };
  publish(server, pack);
  await expectFailure(['integrity', 'invalid', 'unreachable']);
});

test('resolve while building, then the build fails: build-failed', async () => {
  server.resolveAnswer = { status: 202, body: { status: 'building', job: { id: 7, state: 'running', phase: 'fetching' } } };
  server.jobs.set(7, { id: 7, state: 'failed', phase: 'fetching', error: 'upstream went away' });
  await expectFailure('build-failed');
});

test("a failed build that carries an errorCode fails with that code (an unreachable upstream: 4, a missing branch: 3)", async () => {
  server.resolveAnswer = { status: 202, body: { status: 'building', job: { id: 8, state: 'running', phase: 'fetching' } } };
  for (const [errorCode, expected] of [['unreachable', 'unreachable'], ['not-found', 'not-found'], ['no-such-code', 'build-failed'], [null, 'build-failed']] as const) {
    server.jobs.set(8, { id: 8, state: 'failed', phase: 'fetching', error: 'git fetch failed: could not read from remote', errorCode });
    await expectFailure(expected);
  }
});

test('an unknown repository: not-found', async () => {
  await expectFailure('not-found');
});

test('a non-empty target: target-exists, existing files untouched, server never asked', async () => {
  publish(server, makeClonepack(FILES));
  mkdirSync(dirs.target);
  writeFileSync(join(dirs.target, 'mine.txt'), 'keep me\n');
  await assert.rejects(clone(cloneOpts()), isSnap('target-exists'));
  assert.deepEqual(readdirSync(dirs.target), ['mine.txt']);
  assert.equal(readFileSync(join(dirs.target, 'mine.txt'), 'utf8'), 'keep me\n');
  assert.deepEqual(leftovers(dirs.parent), []);
  assert.deepEqual(server.requests, []);
  // A file where the target should be.
  const file = join(dirs.parent, 'afile');
  writeFileSync(file, 'data');
  await assert.rejects(clone(cloneOpts({ dir: file })), isSnap('target-exists'));
  assert.equal(readFileSync(file, 'utf8'), 'data');
  // A symlink to a non-empty directory, to a file, and a dangling one.
  writeFileSync(join(dirs.outside, 'theirs'), 'keep\n');
  for (const [name, to] of [['alink', dirs.outside], ['flink', file], ['dangling', join(dirs.root, 'nowhere')]]) {
    const link = join(dirs.parent, name!);
    symlinkSync(to!, link);
    await assert.rejects(clone(cloneOpts({ dir: link })), isSnap('target-exists'));
    assert.equal(lstatSync(link).isSymbolicLink(), true);
  }
  assert.deepEqual(readdirSync(dirs.outside), ['theirs']);
  assert.equal(existsSync(join(dirs.root, 'nowhere')), false);
  assert.deepEqual(server.requests, []);
});

test('editable mode: a HEAD pack that does not end with its own checksum: integrity, .git staging removed', async () => {
  const pack = makeClonepack([{ path: 'a', content: 'a\n' }]);
  const fakePack = Buffer.concat([Buffer.from('PACK'), Buffer.from([0, 0, 0, 2, 0, 0, 0, 1]), Buffer.alloc(40, 9)]);
  const fakeIdx = Buffer.alloc(64, 1);
  pack.manifest.headPacks = [{ name: pack.manifest.headPacks[0]!.name, pack: { digest: sha256(fakePack), size: fakePack.length }, idx: { digest: sha256(fakeIdx), size: fakeIdx.length }, objects: 1 }];
  pack.artifacts.set(sha256(fakePack), fakePack);
  pack.artifacts.set(sha256(fakeIdx), fakeIdx);
  publish(server, pack);
  await expectFailure('integrity', { mode: 'editable', depth: 1 });
});

/** A real git pack (with its .idx) to stand in as a history pack. */
function realHistoryPack(): { ref: Manifest['historyPacks'][number]; files: Map<string, Buffer> } {
  const repo = mkdtempSync(join(tmpdir(), 'snapclone-histpack-'));
  try {
    const env = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' };
    execFileSync('git', ['init', '-q', repo], { env });
    writeFileSync(join(repo, 'x'), 'x\n');
    execFileSync('git', ['add', 'x'], { cwd: repo, env });
    execFileSync('git', ['commit', '-qm', 'x'], { cwd: repo, env });
    const hash = execFileSync('git', ['pack-objects', '--all', '-q', join(repo, 'p')], { cwd: repo, env, input: '' }).toString().trim();
    const packBytes = readFileSync(join(repo, `p-${hash}.pack`));
    const idxBytes = readFileSync(join(repo, `p-${hash}.idx`));
    return {
      ref: { name: `pack-${hash}`, pack: { digest: sha256(packBytes), size: packBytes.length }, idx: { digest: sha256(idxBytes), size: idxBytes.length }, objects: 3 },
      files: new Map([[sha256(packBytes), packBytes], [sha256(idxBytes), idxBytes]]),
    };
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }
}

test('editable full clone: the work tree comes from the archive, and each file must match its blob id', async () => {
  const hist = realHistoryPack();
  const good = makeClonepack([{ path: 'a', content: 'a\n' }, { path: 'd/b', content: 'b'.repeat(3000) }], { chunkRawBytes: 1000 });
  good.manifest.historyPacks = [hist.ref];
  for (const [d, b] of hist.files) good.artifacts.set(d, b);
  publish(server, good);
  await clone(cloneOpts({ mode: 'editable' }));
  assert.equal(readFileSync(join(dirs.target, 'd/b'), 'utf8'), 'b'.repeat(3000));
  rmSync(dirs.target, { recursive: true, force: true });

  // Same bytes, but the table claims other blob ids: for a whole file and for one spanning chunks.
  for (const which of [0, 1]) {
    const overrides: Partial<TableEntry>[] = [{}, {}];
    overrides[which] = { oid: Buffer.alloc(20, 7) };
    const bad = makeClonepack([{ path: 'a', content: 'a\n' }, { path: 'd/b', content: 'b'.repeat(3000) }], { chunkRawBytes: 1000, entryOverrides: overrides });
    bad.manifest.historyPacks = [hist.ref];
    for (const [d, b] of hist.files) bad.artifacts.set(d, b);
    publish(server, bad);
    await expectFailure('integrity', { mode: 'editable' });
  }
});

test('an answer that is not JSON: a proxy failing (502) is unreachable, anything else invalid data; nothing left', async () => {
  for (const [status, code] of [[502, 'unreachable'], [200, 'invalid'], [404, 'invalid']] as const) {
    server.resolveHandler = (_req, res) => {
      res.writeHead(status, { 'content-type': 'text/html' });
      res.end('<html><body>Bad Gateway</body></html>');
    };
    await expectFailure(code);
  }
});
