/**
 * stdout and stderr for the clone's path, without process.stdout or
 * process.stderr: under Bun the first touch of either builds a stream (it
 * loads node:tty and the stream machinery), 11-20 ms of CPU measured here,
 * more than the whole start-up to the first request. Writes are synchronous
 * (as Node's are to files and pipes on Linux), so they keep their order with
 * everything else written. A closed pipe (EPIPE) is the CLI's "output closed"
 * (stdio-closed.ts): a clone under way undoes itself, else the process exits 141,
 * as the stream guard (src/cli/stdio-guard.ts) does for the streams.
 */
import { fstatSync, statSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { STDIO_CLOSED, STDIO_CLOSED_EXIT } from './stdio-closed.js';

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Whether `fd` is a terminal. */
export function isTerminal(fd: 1 | 2): boolean {
  try {
    // Node's own isatty costs it nothing; Bun's node:tty is what costs the stream above.
    if (process.versions.bun === undefined) return (createRequire(import.meta.url)('node:tty') as typeof import('node:tty')).isatty(fd);
    // A terminal is a character device; /dev/null, the other one stdio meets, is told apart by its device number.
    const st = fstatSync(fd);
    return st.isCharacterDevice() && st.rdev !== statSync('/dev/null').rdev;
  } catch {
    return false;
  }
}

export function writeOut(text: string): void {
  writeFd(1, text);
}

export function writeErr(text: string): void {
  writeFd(2, text);
}

function writeFd(fd: 1 | 2, text: string): void {
  const bytes = Buffer.from(text);
  for (let off = 0; off < bytes.length; ) {
    try {
      off += writeSync(fd, bytes, off, bytes.length - off);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') {
        Atomics.wait(pause, 0, 0, 1); // a non-blocking pipe that is full: the reader catches up
        continue;
      }
      if (code === 'EPIPE') {
        if (!(process as NodeJS.EventEmitter).emit(STDIO_CLOSED)) process.exit(STDIO_CLOSED_EXIT);
        return;
      }
      throw err;
    }
  }
}
