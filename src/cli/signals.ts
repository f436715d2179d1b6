/**
 * Foreground processes (serve, worker) stop on SIGINT, SIGTERM or SIGHUP (a closed terminal or
 * dropped ssh session too), finishing what runs; a second signal exits at once (130). The
 * handlers go in before the process starts its work, so a signal that arrives while it starts
 * still shuts it down cleanly rather than killing it.
 */
export function stopOnSignal(message: string): Promise<void> {
  let stopping = false;
  let stopRequested!: () => void;
  const stopped = new Promise<void>((r) => (stopRequested = r));
  const stop = () => {
    if (stopping) process.exit(130);
    stopping = true;
    process.stderr.write(`snapclone: ${message}; signal again to stop now\n`);
    stopRequested();
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, stop);
  return stopped;
}
