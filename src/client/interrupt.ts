/**
 * Ctrl-C, a kill or a hang-up must not leave a half-written clone: stop the
 * writer threads (they would go on creating files in what is being removed),
 * undo the clone, and exit as a signalled process would. Main-thread writes are
 * synchronous, so none runs while this does. Further signals during the cleanup
 * are ignored: they must not cut it short and leave what was written.
 */
import type { Staging } from './staging.js';
import { STDIO_CLOSED, STDIO_CLOSED_EXIT } from './stdio-closed.js';
import { writeErr } from './stdio.js';

/** Signals that end a clone; SIGHUP is a closed terminal or a dropped ssh session. */
const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;

export interface Interrupt {
  /** A signal arrived: the clone is being undone and the process exits. */
  readonly signalled: boolean;
  /** Unhook the handlers (not while a signal's cleanup runs). */
  remove(): void;
}

export function onInterrupt(staging: Staging, stopWriters: () => Promise<void>): Interrupt {
  let signalled = false;
  const undo = (exitCode: number, why: string) => {
    if (signalled) return;
    signalled = true;
    staging.interrupt(); // nothing more moves into the target
    void stopWriters()
      .catch(() => {}) // a thread that failed to stop is gone anyway; remove what is there
      .then(() => {
        staging.rollback();
        writeErr(`\nsnapclone: ${why}; removed the partial clone\n`);
        process.exit(exitCode);
      });
  };
  const onSignal = (signal: NodeJS.Signals) => undo(128 + SIGNALS[signal as keyof typeof SIGNALS], 'interrupted');
  // stdout or stderr is a closed pipe (src/cli/main.ts): end as git does on SIGPIPE.
  const onClosed = () => undo(STDIO_CLOSED_EXIT, 'output closed');
  for (const s of Object.keys(SIGNALS)) process.on(s, onSignal);
  process.on(STDIO_CLOSED, onClosed);
  return {
    get signalled() {
      return signalled;
    },
    remove() {
      if (signalled) return;
      for (const s of Object.keys(SIGNALS)) process.off(s, onSignal);
      process.off(STDIO_CLOSED, onClosed);
    },
  };
}
