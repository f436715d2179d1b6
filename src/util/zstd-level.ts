/** The server's zstd level setting, checked (shared by the build and `serve`'s startup check). */
import { SnapError } from './errors.js';

export const DEFAULT_ZSTD_LEVEL = 6;

/** The zstd level from $SNAPCLONE_ZSTD_LEVEL: an integer from 1 to 19, default 6. */
export function zstdLevelFromEnv(env: NodeJS.ProcessEnv): number {
  const text = env.SNAPCLONE_ZSTD_LEVEL ?? '';
  if (text === '') return DEFAULT_ZSTD_LEVEL;
  const level = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  checkZstdLevel(level, 'SNAPCLONE_ZSTD_LEVEL', text);
  return level;
}

export function checkZstdLevel(level: number, what: string, shown = String(level)): void {
  // zstd itself clamps any number silently; 20-22 ("ultra") need far more memory to decompress.
  if (!(Number.isInteger(level) && level >= 1 && level <= 19)) {
    throw new SnapError('usage', `${what} must be an integer from 1 to 19, got ${JSON.stringify(shown)}`);
  }
}
