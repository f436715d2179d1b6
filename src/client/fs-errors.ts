/**
 * Local file system failures (disk full, permission denied, read-only, busy...)
 * as one-line `io` errors (exit 13) that name the path and the cause, instead
 * of a stack trace.
 */
import { SnapError } from '../util/errors.js';

const CAUSES: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  EBUSY: 'device or resource busy',
  EIO: 'input/output error',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  ENAMETOOLONG: 'file name too long',
  ENOTDIR: 'a path component is not a directory',
  EISDIR: 'is a directory',
  EEXIST: 'file exists',
  ENOENT: 'no such file or directory',
  ENOTEMPTY: 'directory not empty',
  ELOOP: 'too many levels of symbolic links',
  EMLINK: 'too many links',
  EXDEV: 'not on the same file system',
  ENXIO: 'no such device or address',
  ENODEV: 'no such device',
};

const READS = new Set(['read', 'scandir', 'opendir', 'lstat', 'stat', 'fstat', 'readlink', 'realpath', 'access']);
const REMOVES = new Set(['rmdir', 'unlink', 'rm']);

/** Is this a file system error from Node (an errno code and the failing call)? */
export function isFsError(err: unknown): err is NodeJS.ErrnoException {
  const e = err as NodeJS.ErrnoException | null;
  return e instanceof Error && typeof e.code === 'string' && typeof e.syscall === 'string' && (e.path !== undefined || e.code in CAUSES);
}

/**
 * The `io` SnapError for a file system error, or null when `err` is not one.
 * `shown` maps a path as the error names it to the path the user knows (a
 * staging path to where the file would have appeared).
 */
export function fsErrorToSnap(err: unknown, shown: (path: string) => string = (p) => p): SnapError | null {
  if (err instanceof SnapError || !isFsError(err)) return null;
  const cause = `${CAUSES[err.code!] ?? err.message.replace(/^[A-Z]+: /, '').split(',')[0]} (${err.code})`;
  const verb = READS.has(err.syscall!) ? 'read' : REMOVES.has(err.syscall!) ? 'remove' : 'write';
  const path = err.path === undefined ? null : shown(String(err.path));
  return new SnapError('io', path === null ? `file system error: ${cause}` : `cannot ${verb} ${path}: ${cause}`, { cause: err });
}
