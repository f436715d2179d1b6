/**
 * The process event the CLI emits when stdout or stderr turns out to be a
 * closed pipe (EPIPE): a clone under way listens for it to undo itself before
 * the process ends, as it does for a signal. Without a listener the CLI just exits.
 */
export const STDIO_CLOSED = 'snapclone:stdio-closed';

/** The exit status for a closed output: 128 + SIGPIPE, what a shell shows for git killed by SIGPIPE. */
export const STDIO_CLOSED_EXIT = 141;
