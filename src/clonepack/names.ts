/** Repository names: one or more segments of [A-Za-z0-9._-] joined by "/", e.g. "expressjs/express". */
import { SnapError } from '../util/errors.js';

const SEGMENT = /^[A-Za-z0-9._-]+$/;

export function isValidRepoName(name: string): boolean {
  if (typeof name !== 'string' || name.length === 0 || name.length > 200) return false;
  return name.split('/').every((s) => SEGMENT.test(s) && s !== '.' && s !== '..');
}

export function assertRepoName(name: string): void {
  if (!isValidRepoName(name))
    throw new SnapError('invalid', `invalid repository name ${JSON.stringify(name)}: use segments of letters, digits, '.', '_', '-' separated by '/'`);
}

/** Default name for an upstream URL: its last path segment without ".git" (what git clone names the directory). */
export function nameFromUrl(url: string): string {
  const trimmed = url.replace(/[/\\]+$/, '').replace(/\.git$/, '');
  const last = trimmed.split(/[/:\\]/).pop() ?? '';
  return last.replace(/[^A-Za-z0-9._-]/g, '-') || 'repo';
}
