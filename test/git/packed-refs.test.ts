import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  PACKED_REFS_HEADER,
  cleanReflogMessage,
  formatPackedRefs,
  formatReflogLine,
  formatTimezone,
  type PackedRef,
} from '../../src/git/packed-refs.js';
import { SnapError } from '../../src/util/errors.js';
import { COMMITTER, git, gitText, initRepo, tempRoot, writeFiles } from './helpers.js';

const root = tempRoot('git-refs');
const isInvalid = (e: unknown) => e instanceof SnapError && e.code === 'invalid';
const ZERO = '0'.repeat(40);

function makeSource(): string {
  const src = initRepo(root, 'src');
  for (let i = 0; i < 3; i++) {
    writeFiles(src, { 'f.txt': `rev ${i}\n` });
    git(src, ['add', '-A']);
    git(src, ['commit', '-q', '-m', `c${i}`]);
  }
  // Names chosen to exercise byte order: '-' < '/' < digits < upper case < lower case < UTF-8.
  for (const b of ['feature', 'a-b', 'a/c', 'Zeta', 'ünïcode', 'release/1.0']) git(src, ['branch', b, 'HEAD~1']);
  git(src, ['tag', 'light']); // lightweight: no peeled line
  git(src, ['tag', '-a', '-m', 'one', 'v1.0']);
  git(src, ['tag', '-a', '-m', 'older', 'v0.9', 'HEAD~2']);
  git(src, ['-c', 'advice.nestedTag=false', 'tag', '-a', '-m', 'tag of a tag', 'v1.0-wrapped', 'v1.0']); // peels through two tags
  git(src, ['tag', '-a', '-m', 'a tree', 'tree-tag', 'HEAD^{tree}']);
  git(src, ['tag', '-a', '-m', 'a blob', 'blob-tag', 'HEAD:f.txt']);
  git(src, ['tag', 'light-on-annotated', 'v0.9']); // lightweight ref to a tag object: still peeled
  return src;
}

/** What git clone should put in packed-refs, computed from the source repository. */
function expectedRefs(src: string): PackedRef[] {
  const refs: PackedRef[] = [];
  for (const line of gitText(src, ['for-each-ref', '--format=%(refname) %(objectname) %(objecttype)']).split('\n')) {
    const [name, oid, type] = line.split(' ') as [string, string, string];
    const cloned = name.startsWith('refs/heads/') ? 'refs/remotes/origin/' + name.slice('refs/heads/'.length) : name;
    const ref: PackedRef = { name: cloned, oid };
    if (type === 'tag') ref.peeled = gitText(src, ['rev-parse', `${name}^{}`]);
    refs.push(ref);
  }
  // Shuffle: formatPackedRefs must sort by itself.
  return refs.reverse();
}

test('formatPackedRefs matches the packed-refs git clone writes', () => {
  const src = makeSource();
  const dst = path.join(root, 'dst');
  git(root, ['clone', '-q', src, dst], { env: { GIT_COMMITTER_DATE: '1700000000 +0530' } });
  const packed = fs.readFileSync(path.join(dst, '.git', 'packed-refs'), 'utf8');
  const refs = expectedRefs(src);
  assert.ok(refs.some((r) => r.peeled) && refs.some((r) => !r.peeled && r.name.startsWith('refs/tags/')));
  assert.equal(formatPackedRefs(refs), packed);
  assert.ok(packed.startsWith(PACKED_REFS_HEADER));

  // The reflog git clone starts HEAD and the branch with.
  const head = gitText(src, ['rev-parse', 'HEAD']);
  const line = formatReflogLine(null, head, COMMITTER, 1700000000, 330, `clone: from ${src}`);
  assert.equal(fs.readFileSync(path.join(dst, '.git', 'logs', 'HEAD'), 'utf8'), line);
  assert.equal(fs.readFileSync(path.join(dst, '.git', 'logs', 'refs', 'heads', 'main'), 'utf8'), line);
});

test('formatReflogLine matches git update-ref, message cleanup and time zones included', () => {
  const repo = initRepo(root, 'reflog');
  writeFiles(repo, { a: 'a\n' });
  git(repo, ['add', '-A']);
  git(repo, ['commit', '-q', '-m', 'a']);
  const one = gitText(repo, ['rev-parse', 'HEAD']);
  git(repo, ['commit', '-q', '--allow-empty', '-m', 'b']);
  const two = gitText(repo, ['rev-parse', 'HEAD']);
  const log = path.join(repo, '.git', 'logs', 'refs', 'heads', 'topic');

  const updates: [string, string | null, string, string, number, number][] = [
    // [message, old, new, GIT_COMMITTER_DATE, sec, tz minutes]
    ['  multi\n  line\tmessage\r\n with \v vertical tab and  spaces   \n\n', null, one, '1700000123 -0230', 1700000123, -150],
    ['plain', one, two, '1700000200 +0000', 1700000200, 0],
    [' \n\t ', two, one, '1700000300 +1345', 1700000300, 825],
    ['', one, two, '1700000400 -1200', 1700000400, -720],
  ];
  let expected = '';
  for (const [message, old, neu, date, sec, tz] of updates) {
    const args = ['update-ref', '--create-reflog'];
    if (message) args.push('-m', message);
    args.push('refs/heads/topic', neu);
    git(repo, args, { env: { GIT_COMMITTER_DATE: date } });
    expected += formatReflogLine(old, neu, COMMITTER, sec, tz, message);
    assert.equal(fs.readFileSync(log, 'utf8'), expected, JSON.stringify(message));
  }
  assert.ok(!expected.split('\n')[3]!.includes('\t'), 'no tab without a message');
});

test('reflog helpers', () => {
  assert.equal(formatTimezone(0), '+0000');
  assert.equal(formatTimezone(330), '+0530');
  assert.equal(formatTimezone(-150), '-0230');
  assert.equal(formatTimezone(-30), '-0030');
  assert.equal(formatTimezone(14 * 60), '+1400');
  assert.throws(() => formatTimezone(0.5), isInvalid);
  assert.throws(() => formatTimezone(100 * 60), isInvalid);
  assert.equal(cleanReflogMessage('\u00a0x  y\u2003'), '\u00a0x y\u2003', "only git's isspace() counts");
  assert.throws(() => formatReflogLine(ZERO, 'x'.repeat(40), COMMITTER, 1, 0, 'm'), isInvalid);
  assert.throws(() => formatReflogLine(ZERO, ZERO, { name: 'a<b', email: 'e' }, 1, 0, 'm'), isInvalid);
  assert.throws(() => formatReflogLine(ZERO, ZERO, { name: 'a', email: 'e\n' }, 1, 0, 'm'), isInvalid);
  assert.throws(() => formatReflogLine(ZERO, ZERO, COMMITTER, -1, 0, 'm'), isInvalid);
});

test('formatPackedRefs rejects what git would not write', () => {
  const oid = 'a'.repeat(40);
  assert.equal(formatPackedRefs([]), PACKED_REFS_HEADER);
  assert.throws(() => formatPackedRefs([{ name: 'refs/tags/x', oid }, { name: 'refs/tags/x', oid }]), isInvalid);
  assert.throws(() => formatPackedRefs([{ name: 'refs/tags/x y', oid }]), isInvalid);
  assert.throws(() => formatPackedRefs([{ name: 'refs/tags/x\n', oid }]), isInvalid);
  assert.throws(() => formatPackedRefs([{ name: 'refs/tags/x', oid: oid.toUpperCase() }]), isInvalid);
  assert.throws(() => formatPackedRefs([{ name: 'refs/tags/x', oid, peeled: 'zz' }]), isInvalid);
});
