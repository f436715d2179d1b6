/**
 * Peak RSS of a timed command, from the kernel's wait4 rusage as GNU time reports
 * it (`/usr/bin/time -f %M`: the largest ru_maxrss of the process and the
 * descendants it waited for). Node exposes no child rusage, and polling /proc
 * misses short-lived helpers such as git's index-pack. Every variant is wrapped
 * the same way, so the wrapper's own fork+exec (~1 ms) is in every sample.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';

export const TIME_BIN = '/usr/bin/time';
export const haveTime = existsSync(TIME_BIN);

let seq = 0;

export interface RssProbe {
  argv: string[];
  /** Peak RSS in bytes, NaN if unavailable; removes the probe's file. */
  read: () => number;
}

/** Wrap argv so its peak RSS is written to a file under dir. */
export function withRss(argv: string[], dir: string): RssProbe {
  if (!haveTime) return { argv, read: () => NaN };
  const file = `${dir}/rss-${process.pid}-${seq++}.txt`;
  return {
    argv: [TIME_BIN, '-q', '-f', 'maxrss %M', '-o', file, ...argv],
    read: () => {
      try {
        const m = /maxrss (\d+)/.exec(readFileSync(file, 'utf8'));
        return m ? Number(m[1]) * 1024 : NaN;
      } catch {
        return NaN;
      } finally {
        rmSync(file, { force: true });
      }
    },
  };
}
