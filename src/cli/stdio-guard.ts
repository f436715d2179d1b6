/**
 * A closed stdout or stderr (`snapclone list | head -1`) ends the process
 * quietly with 141, as git ends killed by SIGPIPE (Node ignores SIGPIPE and
 * reports EPIPE instead): the reader wants no more, and nothing can be said on
 * a closed stream. A clone under way hears it first and removes what it wrote.
 * `serve` is the exception: clients still depend on it.
 *
 * Installed before anything is written. A clone installs it only once its first
 * request has left (clone-cmd.ts), because touching process.stdout costs Bun
 * ~7 ms (it builds the stream then), a third of the start-up budget.
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
