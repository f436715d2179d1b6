/**
 * The repository-name rules the client checks before asking the server (a bad
 * name is a usage error, exit 2), and the default clone directory. One set of
 * rules, shared with the server: src/clonepack/names.ts.
 */
export { assertRepoName, defaultCloneDir } from '../clonepack/names.js';
