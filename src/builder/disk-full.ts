/**
 * A full disk (or quota) is the operator's to fix, not a build bug: it fails a job with
 * code `io` and a message that says so, whether Node's fs or a git child hit it.
 */
import { SnapError } from '../util/errors.js';

const NODE_CODES: Record<string, string> = { ENOSPC: 'no space left on device', EDQUOT: 'disk quota exceeded' };

/** git's (and zlib's, and the kernel's) ways of saying the disk is full. */
const GIT_DISK_FULL = /no space left on device|out of diskspace|disk quota exceeded|\bENOSPC\b|\bEDQUOT\b/i;

/** Whether a failed git's stderr says the disk is full. */
export function gitSaysDiskFull(stderr: string): boolean {
  // Only git's own lines: `remote:` lines are the upstream talking (its disk being full is not ours).
  return stderr.split(/\r?\n|\r/).some((line) => !/^\s*remote:/i.test(line) && GIT_DISK_FULL.test(line));
}

/** The `io` error for a Node error that is a full disk or quota, else null. */
export function diskFullError(err: unknown): SnapError | null {
  if (err instanceof SnapError) return null;
  const e = err as NodeJS.ErrnoException | null;
  const cause = e instanceof Error && typeof e.code === 'string' ? NODE_CODES[e.code] : undefined;
  if (!cause) return null;
  return new SnapError('io', `disk full: cannot write${e!.path ? ` ${String(e!.path)}` : ''}: ${cause} (${e!.code})`, { cause: err });
}
