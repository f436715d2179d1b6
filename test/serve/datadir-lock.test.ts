/**
 * The data dir lock is held without writing the lock file: a start changes no
 * byte of an existing server.lock, so a crash during a start cannot leave it
 * corrupt; and the lock holds across processes until its holder dies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LOCK_FILE, lockDataDir } from '../../src/serve/datadir.js';
import { SnapError } from '../../src/util/errors.js';

test('a start writes nothing to an existing lock file; creating one leaves no partial file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'snapclone-lock-'));
  try {
    lockDataDir(dir).release();
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith(LOCK_FILE)), [LOCK_FILE], 'no tmp file left beside it');
    const path = join(dir, LOCK_FILE);
    const before = { bytes: readFileSync(path), mtime: statSync(path).mtimeMs };
    await new Promise((r) => setTimeout(r, 20)); // so a write would show in the mtime
    const lock = lockDataDir(dir);
    assert.throws(() => lockDataDir(dir), (e: unknown) => e instanceof SnapError && e.code === 'locked');
    lock.release();
    assert.deepEqual({ bytes: readFileSync(path), mtime: statSync(path).mtimeMs }, before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('held by another process: refused; once that process is SIGKILLed: taken', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'snapclone-lock-'));
  const datadir = fileURLToPath(new URL('../../src/serve/datadir.js', import.meta.url));
  const child = spawn(process.execPath, ['--input-type=module', '-e', `import { lockDataDir } from ${JSON.stringify(datadir)}; lockDataDir(${JSON.stringify(dir)}); console.log('held'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => b.toString().includes('held') && resolve());
      child.on('exit', (code) => reject(new Error(`holder exited ${code}`)));
    });
    assert.throws(() => lockDataDir(dir), (e: unknown) => e instanceof SnapError && e.code === 'locked' && e.message.includes(`pid ${child.pid}`));
    const gone = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await gone;
    lockDataDir(dir).release();
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
