/**
 * A closed stdout or stderr (`snapclone list | head -1`) ends the process
 * quietly with 141, as git ends killed by SIGPIPE (Node ignores SIGPIPE and
 * reports EPIPE instead): the reader wants no more, and nothing can be said on
 * a closed stream. A clone under way hears it first and removes what it wrote.
 * `serve` is the exception: clients still depend on it.
 *
 * Installed before anything is written, by every command but clone: a clone
 * never touches process.stdout or process.stderr (under Bun that builds the
 * streams, 11-20 ms of CPU) and writes through src/client/stdio.ts, which
 * handles EPIPE the same way; so do `out()` and the CLI's error line.
 */
import { STDIO_CLOSED, STDIO_CLOSED_EXIT } from '../client/stdio-closed.js';

let guarded = false;

export function guardStdio(): void {
  if (guarded) return;
  guarded = true;
  const serving = process.argv[2] === 'serve' || process.argv[2] === 'worker';
  for (const stream of [process.stdout, process.stderr])
    stream.on('error', (err: NodeJS.ErrnoException) => {
      // A server whose log reader went away keeps serving; its log lines are lost.
      if (serving) return;
      if (err.code !== 'EPIPE') throw err;
      if (!(process as NodeJS.EventEmitter).emit(STDIO_CLOSED)) process.exit(STDIO_CLOSED_EXIT);
    });
}
