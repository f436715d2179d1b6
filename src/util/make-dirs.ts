/**
 * mkdir -p without Node's `mkdirSync(dir, { recursive: true })`, which loops
 * forever at 100% CPU (Node 20) when mkdir(child) fails with ENOENT although
 * the parent exists, as under /proc or /sys: it creates the parent (EEXIST) and
 * retries the child, again and again. Here a second ENOENT after creating the
 * parents is an error. An existing entry of any type counts as done: callers
 * that need a directory check what they got.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export function makeDirs(dir: string, mode?: number): void {
  try {
    mkdirSync(dir, mode);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT') throw err;
  }
  const parent = dirname(dir);
  if (parent === dir) throw new Error(`cannot create ${dir}: its root does not exist`);
  makeDirs(parent, mode);
  mkdirSync(dir, mode);
}
