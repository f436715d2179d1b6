/**
 * A clone signalled while its writer threads are creating files: the threads
 * must be stopped before the partial clone is removed, or they recreate files
 * in directories being deleted, the removal fails, and the clone leaves
 * thousands of files behind while saying it removed them. Every artifact is
 * served at once, so writing the tree is what the signal interrupts.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeServer, cloneDirs, makeClonepack, publish, type FileSpec } from './fake-server.js';

const BIN = fileURLToPath(new URL('../../../bin/snapclone.js', import.meta.url));

const DIRS = 4;
const PER_DIR = 10_000;

function manyFiles(): FileSpec[] {
  const files: FileSpec[] = [];
  for (let d = 0; d < DIRS; d++)
    for (let f = 0; f < PER_DIR; f++) {
      const path = `d${String(d).padStart(4, '0')}/f${String(f).padStart(4, '0')}.txt`;
      files.push({ path, content: `${path}\n`.repeat(4) });
    }
  return files;
}

/** File `f` of directory `d`, inside the clone's staging directory, if there is one yet. */
function stagedFile(target: string, d: number, f: number): string | null {
  if (!existsSync(target)) return null;
  const staging = readdirSync(target).find((n) => n.startsWith('.snapclone-staging-'));
  return staging ? join(target, staging, `d${String(d).padStart(4, '0')}`, `f${String(f).padStart(4, '0')}.txt`) : null;
}

/** Serve the many-file clonepack and start a files-mode clone of it with two writer threads. */
async function startClone(t: TestContext) {
  const server = await FakeServer.start();
  const dirs = cloneDirs();
  t.after(async () => {
    await server.close();
    dirs.cleanup();
  });
  publish(server, makeClonepack(manyFiles(), { chunkRawBytes: 16 << 10 }));
  mkdirSync(dirs.parent, { recursive: true });
  const child = spawn(process.execPath, [BIN, 'clone', 'demo', dirs.target, '--mode', 'files', '--server', server.url], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, SNAPCLONE_WORKERS: '2' },
  });
  return { dirs, child };
}

const CASES = [
  { name: 'SIGTERM', signals: ['SIGTERM'], codes: [143] },
  { name: 'SIGINT', signals: ['SIGINT'], codes: [130] },
  // A second signal (an impatient Ctrl-C) must not cut the cleanup short. Two
  // pending signals may be delivered in either order: the first handled names the exit.
  { name: 'SIGTERM then at once SIGINT', signals: ['SIGTERM', 'SIGINT'], codes: [143, 130] },
] as const;

for (const { name, signals, codes } of CASES) {
  test(`${name} while writer threads create files removes everything the clone wrote`, async (t) => {
    const { dirs, child } = await startClone(t);
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, sig) => r((exited = { code, signal: sig }))));
    // Signal once the writers are well into the tree (the first thousand files exist), not after a fixed time.
    for (;;) {
      const probe = stagedFile(dirs.target, 0, 1000);
      if ((probe && existsSync(probe)) || exited) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(exited, null, `the clone was still running when signalled: ${stderr}`);
    const last = stagedFile(dirs.target, DIRS - 1, PER_DIR - 1);
    assert.ok(last && !existsSync(last), 'the writers had not finished when signalled');
    for (const s of signals) child.kill(s);
    const { code } = await exit;
    assert.ok((codes as readonly number[]).includes(code!), `exit ${code}: ${stderr}`);
    assert.match(stderr, /interrupted; removed the partial clone/);
    assert.equal(existsSync(dirs.target), false, `the target the clone created is gone (left: ${existsSync(dirs.target) ? readdirSync(dirs.target).join(', ') : ''})`);
    assert.deepEqual(readdirSync(dirs.parent), []);
  });
}

test('a clone whose stderr is a closed pipe removes what it wrote and exits 141, as git on SIGPIPE', async (t) => {
  // "Cloning into ..." goes to stderr once the staging directory exists: that write finds the pipe closed.
  const { dirs, child } = await startClone(t);
  child.stderr.destroy();
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  assert.equal(code, 141);
  assert.equal(existsSync(dirs.target), false, `nothing left (left: ${existsSync(dirs.target) ? readdirSync(dirs.target).join(', ') : ''})`);
  assert.deepEqual(readdirSync(dirs.parent), []);
});
