/**
 * Errors that carry a stable code and an exit status, so the CLI can print one
 * line and exit non-zero without a stack trace for expected failures.
 */
export type ErrorCode =
  | 'usage'
  | 'not-found'
  | 'unreachable'
  | 'build-failed'
  | 'integrity'
  | 'invalid'
  | 'target-exists'
  | 'conflict'
  | 'unauthorized'
  | 'timeout'
  | 'artifact-missing'
  | 'io'
  | 'locked'
  | 'rate-limited'
  | 'internal';

const EXIT_CODES: Record<ErrorCode, number> = {
  usage: 2,
  'not-found': 3,
  unreachable: 4,
  'build-failed': 5,
  integrity: 6,
  invalid: 7,
  'target-exists': 8,
  conflict: 9,
  unauthorized: 10,
  timeout: 11,
  /** The server lacks (or has quarantined) an artifact a manifest names. */
  'artifact-missing': 12,
  /** A local file system error: disk full, permission denied, busy. */
  io: 13,
  /** The data directory is held by another running server. */
  locked: 14,
  /** Too many on-demand builds; retry later, or sync with the admin token. */
  'rate-limited': 15,
  internal: 1,
};

export class SnapError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'SnapError';
  }
  get exitCode(): number {
    return EXIT_CODES[this.code];
  }
}

export function exitCodeFor(code: ErrorCode): number {
  return EXIT_CODES[code];
}

/** Integrity failures are never retried: the bytes are wrong, not late. */
export function integrityError(message: string): SnapError {
  return new SnapError('integrity', message);
}

export function invalid(message: string): SnapError {
  return new SnapError('invalid', message);
}
