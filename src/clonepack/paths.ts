/**
 * Work-tree path rules. Paths are raw git bytes (never round-tripped through
 * JS strings, so non-UTF-8 names survive). A path from the network is accepted
 * only if writing it cannot escape the target or touch .git.
 */
import { invalid } from '../util/errors.js';

const SLASH = 0x2f;
const MAX_PATH_BYTES = 4096;

/** Why a path is unsafe, or null if it is fine. */
export function pathProblem(path: Uint8Array): string | null {
  if (path.length === 0) return 'empty path';
  if (path.length > MAX_PATH_BYTES) return 'path too long';
  if (path[0] === SLASH) return 'absolute path';
  if (path[path.length - 1] === SLASH) return 'trailing slash';
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i < path.length && path[i] === 0) return 'NUL byte in path';
    if (i === path.length || path[i] === SLASH) {
      const len = i - start;
      if (len === 0) return 'empty path component';
      if (len === 1 && path[start] === 0x2e) return "'.' component";
      if (len === 2 && path[start] === 0x2e && path[start + 1] === 0x2e) return "'..' component";
      if (len === 4 && isDotGit(path, start)) return "'.git' component";
      start = i + 1;
    }
  }
  return null;
}

function isDotGit(p: Uint8Array, s: number): boolean {
  return p[s] === 0x2e && (p[s + 1]! | 0x20) === 0x67 && (p[s + 2]! | 0x20) === 0x69 && (p[s + 3]! | 0x20) === 0x74;
}

export function assertSafePath(path: Uint8Array): void {
  const problem = pathProblem(path);
  if (problem) throw invalid(`unsafe path ${shownPath(path)}: ${problem}`);
}

/**
 * Untrusted text quoted for a one-line error: JSON escapes C0 controls, and DEL, the C1
 * controls (a latin1 0x9b is a terminal's CSI) and the Unicode line separators are escaped too.
 */
export function quoted(text: string, max = 200): string {
  const cut = text.length > max ? `${text.slice(0, max)}...` : text;
  return JSON.stringify(cut).replace(/[\x7f-\x9f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A raw git path (any bytes) for an error message. */
export function shownPath(path: Uint8Array): string {
  return quoted(Buffer.from(path).toString('latin1'));
}

/** Parent directories of a path, shallowest first ("a/b/c" -> ["a", "a/b"]), as latin1 keys. */
export function parentDirs(path: Uint8Array): string[] {
  const out: string[] = [];
  for (let i = 0; i < path.length; i++) if (path[i] === SLASH) out.push(Buffer.from(path.subarray(0, i)).toString('latin1'));
  return out;
}
