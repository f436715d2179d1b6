/**
 * Ref names come from the (untrusted) manifest and become lines of packed-refs
 * in the clone. Property, with the real git as the judge: every name the
 * manifest's check (isValidRefName) accepts, git check-ref-format accepts too,
 * and a packed-refs file formatPackedRefs writes for such names lists exactly
 * those refs in `git for-each-ref`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { isValidRefName } from '../../src/clonepack/refs.js';
import { formatPackedRefs } from '../../src/git/packed-refs.js';
import { git, gitEnv, gitText, initRepo, tempRoot } from '../git/helpers.js';
import { fuzzParams } from './fuzz-support.js';

const root = tempRoot('fuzz-refs');
const repo = initRepo(root, 'r');
git(repo, ['commit', '-q', '--allow-empty', '-m', 'one']);
const COMMIT = gitText(repo, ['rev-parse', 'HEAD']);

// Characters git treats specially in ref names, and ordinary ones.
const char = fc.oneof(
  { arbitrary: fc.constantFrom('a', 'b', 'Z', '0', '-', '_', 'é', '✓', 'lock'), weight: 6 },
  { arbitrary: fc.constantFrom('.', '/', '@', '{', '}', '~', '^', ':', '?', '*', '[', '\\', ' ', '\t', '\x7f', '.lock', '..', '@{', '//', '#', '"', "'", '$', '!'), weight: 1 },
);
const refName = fc.tuple(fc.constantFrom('refs/heads/', 'refs/tags/'), fc.array(char, { minLength: 1, maxLength: 12 })).map(([p, cs]) => p + cs.join(''));

test('every ref name the manifest check accepts is one git accepts, and git reads our packed-refs of them', () => {
  fc.assert(
    fc.property(fc.uniqueArray(refName, { minLength: 1, maxLength: 15 }), (names) => {
      const accepted = names.filter(isValidRefName);
      if (accepted.length === 0) return;
      // One shell for all names: git check-ref-format takes one name per run.
      const rejected = execFileSync('sh', ['-c', 'for n in "$@"; do git check-ref-format "$n" || printf "%s\\n" "$n"; done', 'sh', ...accepted], { env: gitEnv() }).toString();
      assert.equal(rejected, '', `git rejects names isValidRefName accepts:\n${rejected}`);
      // A ref below another one's name (refs/heads/a and refs/heads/a/b) cannot coexist in git: keep one of each such pair.
      const names2 = accepted.filter((n) => !accepted.some((m) => m !== n && (m.startsWith(`${n}/`) || n.startsWith(`${m}/`)) && m < n));
      fs.writeFileSync(path.join(repo, '.git', 'packed-refs'), formatPackedRefs(names2.map((n) => ({ name: n, oid: COMMIT }))));
      const listed = gitText(repo, ['for-each-ref', '--format=%(objectname) %(refname)', 'refs/tags', 'refs/heads/'])
        .split('\n')
        .filter((l) => l && !l.endsWith(' refs/heads/main'));
      const expected = names2.map((n) => `${COMMIT} ${n}`).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      assert.deepEqual(listed, expected);
    }),
    fuzzParams(80, 50),
  );
});
