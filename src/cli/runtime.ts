/**
 * Server commands on Node. The launcher (bin/snapclone, made by
 * launcher.ts) starts every command on Bun when Bun is installed, because Bun
 * starts ~40 ms sooner than Node; `serve` and `worker` need Node (better-sqlite3
 * does not load in Bun), so under Bun they become Node in place: execve keeps
 * the pid, the arguments, the environment and the terminal, so signals, the
 * data-dir lock's pid and exit codes are Node's own.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SnapError } from '../util/errors.js';

/** Replace this process (Bun) with Node running the same command. */
export function becomeNode(): never {
  const node = process.env.SNAPCLONE_NODE || onPath('node');
  if (!node) throw new SnapError('usage', `${process.argv[2]} runs on Node.js (>= 20); no node on PATH (or set SNAPCLONE_NODE)`);
  const script = fileURLToPath(new URL('../../../bin/snapclone.js', import.meta.url));
  const execve = (process as unknown as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve;
  if (typeof execve !== 'function') throw new SnapError('usage', `${process.argv[2]} runs on Node.js: run it as \`node ${script} ${process.argv[2]}\` (this Bun cannot hand over)`);
  return execve.call(process, node, [node, script, ...process.argv.slice(2)], process.env);
}

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}
