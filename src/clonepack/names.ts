/**
 * Repository names: one or more segments of [A-Za-z0-9._-] joined by "/", e.g.
 * "expressjs/express". A name becomes a path (the server's mirror, the default
 * clone directory), so no segment may be a dot-name ("." "..", "..."), or
 * ".git" in any case: `clone foo/.git` must never write into ./.git.
 * Server and client share these rules; a bad name is a usage error (exit 2).
 */
import { SnapError } from '../util/errors.js';

const SEGMENT = /^[A-Za-z0-9._-]+$/;
const MAX_LENGTH = 200;

/** Why `name` is not a valid repository name, or null when it is. */
export function repoNameProblem(name: unknown): string | null {
  if (typeof name !== 'string' || name.length === 0) return 'it is empty';
  if (name.length > MAX_LENGTH) return `it is longer than ${MAX_LENGTH} characters`;
  for (const s of name.split('/')) {
    if (s === '') return "it has an empty segment (a leading, trailing or doubled '/')";
    if (!SEGMENT.test(s)) return "use segments of letters, digits, '.', '_', '-' separated by '/'";
    if (/^\.+$/.test(s)) return `segment ${JSON.stringify(s)} is all dots`;
    if (s.toLowerCase() === '.git') return `segment ${JSON.stringify(s)} would name a .git directory`;
  }
  return null;
}

export function isValidRepoName(name: string): boolean {
  return repoNameProblem(name) === null;
}

export function assertRepoName(name: string): void {
  const problem = repoNameProblem(name);
  if (problem) throw new SnapError('usage', `invalid repository name ${JSON.stringify(name)}: ${problem}`);
}

/**
 * Default name for an upstream URL, the way git names the clone directory:
 * trailing "/" and "/.git" dropped, the last path segment, without ".git".
 * Characters a name cannot hold become "-"; "repo" when nothing valid is left.
 */
export function nameFromUrl(url: string): string {
  const trimmed = url.trim().replace(/[/\\]+$/, '').replace(/[/\\]\.git$/, '').replace(/[/\\]+$/, '');
  const last = (trimmed.split(/[/:\\]/).pop() ?? '').replace(/\.git$/, '');
  const name = last.replace(/[^A-Za-z0-9._-]/g, '-');
  return isValidRepoName(name) ? name : 'repo';
}

/**
 * The directory `snapclone clone NAME` writes when no DIR is given, as git
 * derives it: the last segment without ".git" ("tools/foo.git" -> "foo"). A
 * valid name's last segment is never a dot-name; one that would become one
 * without ".git" ("..git") keeps it. One that would become ".git" in any case
 * (".git.git", ".GIT.git") is a usage error: git 2.39 really clones
 * `/x/.git.git` into ./.git, writing a work tree into the current directory's
 * repository, and ".GIT" is ".git" on a case-insensitive file system.
 */
export function defaultCloneDir(name: string): string {
  const last = name.split('/').pop() ?? '';
  const stripped = last.replace(/\.git$/, '');
  if (stripped.toLowerCase() === '.git')
    throw new SnapError('usage', `the default directory for ${JSON.stringify(name)} would be '${stripped}', a .git directory: give DIR (snapclone clone NAME DIR)`);
  return stripped === '' || /^\.+$/.test(stripped) ? last : stripped;
}
