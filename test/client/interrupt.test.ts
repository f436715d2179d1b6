/**
 * A clone interrupted mid-download: the CLI (a real subprocess) must undo it.
 * SIGINT, SIGTERM and SIGHUP (a closed terminal, a dropped ssh session) remove
 * what it wrote and exit 128 + the signal; after SIGKILL, which nothing can
 * catch, the next clone into the same DIR removes the dead clone's staging
 * directory. The server answers everything but holds one archive chunk open
 * forever, so the signal always lands mid-download.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FakeServer, cloneDirs, leftovers, makeClonepack, publish } from './fake-server.js';

const BIN = fileURLToPath(new URL('../../../bin/snapclone.js', import.meta.url));

/** Staging directories inside a target. */
function stagingIn(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith('.snapclone-staging-')) : [];
}

/** Staging directories of a clone into dirs.target, wherever a client put them (inside the target, or beside it). */
function staging(dirs: { parent: string; target: string }): string[] {
  return [...stagingIn(dirs.target), ...leftovers(dirs.parent)];
}

async function interrupted(signal: NodeJS.Signals, opts: { existing?: boolean } = {}) {
  const server = await FakeServer.start();
  const dirs = cloneDirs();
  const pack = makeClonepack([{ path: 'a.txt', content: 'a'.repeat(1000) }, { path: 'b.txt', content: 'b' }]);
  publish(server, pack);
  let stalled!: () => void;
  const requested = new Promise<void>((r) => (stalled = r));
  // Answer the chunk's headers and a few bytes, then never finish.
  const chunk = pack.artifacts.get(pack.chunkDigests[0]!)!;
  server.artifacts.set(pack.chunkDigests[0]!, (_req, res) => {
    res.writeHead(200, { 'content-length': chunk.length });
    res.write(chunk.subarray(0, 10));
    stalled();
  });
  if (opts.existing) mkdirSync(dirs.target, { recursive: true });
  else mkdirSync(dirs.parent, { recursive: true });
  const child = spawn(process.execPath, [BIN, 'clone', 'demo', dirs.target, '--mode', 'files', '--server', server.url], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, sig) => r({ code, signal: sig })));
  await requested;
  try {
    assert.equal(staging(dirs).length, 1, 'the clone is under way in a staging directory');
  } catch (err) {
    child.kill('SIGKILL'); // else the stalled clone and this server keep the test alive
    await server.close();
    dirs.cleanup();
    throw err;
  }
  child.kill(signal);
  const exit = await exited;
  return {
    server,
    dirs,
    pack,
    chunk,
    exit,
    stderr: () => stderr,
    done: async () => {
      await server.close();
      dirs.cleanup();
    },
  };
}

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  test(`${signal} during a clone removes the partial clone and exits ${code}`, async () => {
    const t = await interrupted(signal);
    try {
      assert.equal(t.exit.code, code, t.stderr());
      assert.match(t.stderr(), /interrupted; removed the partial clone/);
      assert.equal(existsSync(t.dirs.target), false, 'the target the clone created is gone');
      assert.deepEqual(readdirSync(t.dirs.parent), []);
      assert.deepEqual(leftovers(t.dirs.parent), []);
    } finally {
      await t.done();
    }
  });
}

test('SIGHUP during a clone into an existing empty directory leaves it empty and in place', async () => {
  const t = await interrupted('SIGHUP', { existing: true });
  try {
    assert.equal(t.exit.code, 129, t.stderr());
    assert.deepEqual(readdirSync(t.dirs.target), []);
    assert.ok(statSync(t.dirs.target).isDirectory());
  } finally {
    await t.done();
  }
});

for (const existing of [false, true]) {
  test(`after a SIGKILLed clone${existing ? ' into an existing empty directory' : ''}, the next clone into the same DIR succeeds and leaves no leftovers`, async () => {
    const t = await interrupted('SIGKILL', { existing });
    try {
      assert.equal(t.exit.signal, 'SIGKILL');
      assert.equal(staging(t.dirs).length, 1, 'SIGKILL cannot be caught: the staging directory is left');
      // The server now answers the chunk in full.
      t.server.artifacts.set(t.pack.chunkDigests[0]!, t.chunk);
      const again = spawn(process.execPath, [BIN, 'clone', 'demo', t.dirs.target, '--mode', 'files', '--server', t.server.url], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      again.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      const code = await new Promise<number | null>((r) => again.on('exit', (c) => r(c)));
      assert.equal(code, 0, stderr);
      assert.deepEqual(readdirSync(t.dirs.target).sort(), ['a.txt', 'b.txt']);
      assert.equal(readFileSync(`${t.dirs.target}/a.txt`, 'utf8'), 'a'.repeat(1000));
      assert.deepEqual(readdirSync(t.dirs.parent), ['target']);
    } finally {
      await t.done();
    }
  });
}
