/** Test support for cached-copy damage: bit rot no stat can see. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { open, stat } from 'node:fs/promises';

/** Change bytes of a file in place, keeping its inode, size and mtime: damage no stat can see. */
export async function rotInPlace(path: string, at: number): Promise<void> {
  const before = await stat(path);
  const beforeNs = (await stat(path, { bigint: true })).mtimeNs;
  const fh = await open(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, at);
  } finally {
    await fh.close();
  }
  // utimes takes no nanoseconds; touch does.
  const touched = spawnSync('touch', ['-m', '-d', `@${beforeNs / 1_000_000_000n}.${String(beforeNs % 1_000_000_000n).padStart(9, '0')}`, path]);
  assert.equal(touched.status, 0, String(touched.stderr));
  const after = await stat(path);
  assert.equal(after.ino, before.ino);
  assert.equal(after.mtimeMs, before.mtimeMs);
}
