/**
 * Ctrl-C in the middle of a clone: the CLI (a real subprocess) must remove its
 * staging directory and exit 130. The server answers everything but holds one
 * archive chunk open forever, so the signal always lands mid-download.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FakeServer, cloneDirs, leftovers, makeClonepack, publish } from './fake-server.js';

const BIN = fileURLToPath(new URL('../../../bin/snapclone.js', import.meta.url));

test('SIGINT during a clone removes the partial clone and exits 130', async () => {
  const server = await FakeServer.start();
  const dirs = cloneDirs();
  try {
    const pack = makeClonepack([{ path: 'a.txt', content: 'a'.repeat(1000) }, { path: 'b.txt', content: 'b' }]);
    publish(server, pack);
    let stalled!: () => void;
    const requested = new Promise<void>((r) => (stalled = r));
    // Answer the chunk's headers and a few bytes, then never finish.
    server.artifacts.set(pack.chunkDigests[0]!, (_req, res) => {
      res.writeHead(200, { 'content-length': 1 << 20 });
      res.write(Buffer.alloc(10));
      stalled();
    });
    const child = spawn(process.execPath, [BIN, 'clone', 'demo', dirs.target, '--mode', 'files', '--server', server.url], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    await requested;
    assert.equal(leftovers(dirs.parent).length, 1, 'the clone is under way in a staging directory');
    child.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    assert.match(stderr, /interrupted; removed the partial clone/);
    assert.deepEqual(leftovers(dirs.parent), []);
    assert.equal(existsSync(dirs.target), false);
  } finally {
    await server.close();
    dirs.cleanup();
  }
});
