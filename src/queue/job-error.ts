import { oneLine } from '../util/log.js';
import { redactUrl } from '../util/redact.js';

/** The error to store: one line, no control characters (a NUL from git's stderr once ended up in the database), no credentials. */
export function jobErrorMessage(err: unknown): string {
  const text = err instanceof Error ? err.message || err.name : String(err);
  return oneLine(redactUrl(text)) || 'unknown error';
}
