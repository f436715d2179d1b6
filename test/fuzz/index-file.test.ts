/**
 * Properties of the git index writer and reader (src/git/index-file.ts), with the
 * real git as the judge: for generated work trees (files, executables, symlinks,
 * odd byte names), the index encodeIndex writes lists the same entries as the one
 * `git add -A` writes, with the same stat data, and `git diff-files` and
 * `git status` find the tree clean. Encoded indexes round-trip through decodeIndex;
 * mutated ones (resealed or not) are decoded or refused with a SnapError.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { decodeIndex, encodeIndex, statFromLstat, type IndexEntry } from '../../src/git/index-file.js';
import { blobOid } from '../../src/git/pack.js';
import { pathProblem } from '../../src/clonepack/paths.js';
import { git, initRepo, tempRoot } from '../git/helpers.js';
import { fuzzParams, mutated, parsesOrRefuses, randomBytes } from './fuzz-support.js';

const root = tempRoot('fuzz-index');
let repos = 0;

const component = fc.oneof(
  fc.constantFrom('a', 'b', 'B', 'a.txt', 'a-b', 'a b', 'é', '日本', 'dir', 'dir.txt', 'dir0', 'x'.repeat(30)),
  fc.uint8Array({ minLength: 1, maxLength: 5 }).map((a) => Buffer.from(a.map((c) => (c < 0x20 || c === 0x2f || c === 0x5c || c === 0x7f ? 0x61 + (c % 26) : c))).toString('latin1')),
);
const relPath = fc.array(component, { minLength: 1, maxLength: 3 }).map((cs) => Buffer.from(cs.join('/'), 'latin1')).filter((p) => pathProblem(p) === null);

type Kind = 'file' | 'exec' | 'link';
interface Spec {
  path: Buffer;
  kind: Kind;
  content: Buffer;
}

/** Generated work trees: unique paths, none below another file. */
const workTree = fc
  .uniqueArray(fc.record({ path: relPath, kind: fc.constantFrom<Kind>('file', 'file', 'exec', 'link'), content: fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)) }), { minLength: 1, maxLength: 12, selector: (s) => s.path.toString('latin1') })
  .map((specs): Spec[] => {
    const dirs = new Set(specs.flatMap((s) => { const p = s.path.toString('latin1'); return [...p.matchAll(/\//g)].map((m) => p.slice(0, m.index)); }));
    return specs
      .filter((s) => !dirs.has(s.path.toString('latin1')))
      // A symlink target is a path-like string without NUL (and non-empty).
      .map((s) => (s.kind === 'link' ? { ...s, content: s.content.length ? Buffer.from(s.content.map((c) => c || 0x61)) : Buffer.from('t') } : s))
      .sort((a, b) => Buffer.compare(a.path, b.path));
  });

function abs(repo: string, rel: Buffer): Buffer {
  return Buffer.concat([Buffer.from(repo + '/'), rel]);
}

/** git ls-files --stage -z as "mode oid path" lines (path in latin1). */
function lsStage(repo: string, env: Record<string, string> = {}): string[] {
  return git(repo, ['ls-files', '--stage', '-z'], { env }).toString('latin1').split('\0').filter(Boolean).map((l) => l.replace(/ 0\t/, ' '));
}

test('generated work trees: our index equals the one git add writes, and git finds the tree clean', () => {
  fc.assert(
    fc.property(workTree, (specs) => {
      const repo = initRepo(root, `t${repos++}`);
      for (const s of specs) {
        const file = abs(repo, s.path);
        fs.mkdirSync(file.subarray(0, file.lastIndexOf(0x2f)), { recursive: true });
        if (s.kind === 'link') fs.symlinkSync(s.content, file);
        else fs.writeFileSync(file, s.content, { mode: s.kind === 'exec' ? 0o755 : 0o644 });
      }
      const entries: IndexEntry[] = specs.map((s) => ({
        path: s.path,
        mode: s.kind === 'link' ? 0o120000 : s.kind === 'exec' ? 0o100755 : 0o100644,
        oid: blobOid(s.content),
        stat: statFromLstat(fs.lstatSync(abs(repo, s.path), { bigint: true })),
      }));
      const ours = encodeIndex(entries);
      fs.writeFileSync(path.join(repo, '.git', 'index'), ours);
      // git's own index of the same tree, in a separate file.
      const gitIndex = path.join(repo, '.git', 'index.git');
      git(repo, ['add', '-A'], { env: { GIT_INDEX_FILE: gitIndex } });
      assert.deepEqual(lsStage(repo), lsStage(repo, { GIT_INDEX_FILE: gitIndex }));
      const theirs = decodeIndex(fs.readFileSync(gitIndex));
      const back = decodeIndex(ours);
      assert.deepEqual(
        back.entries.map((e) => [e.path.toString('latin1'), e.mode, e.oid.toString('hex'), e.stat]),
        theirs.entries.map((e) => [e.path.toString('latin1'), e.mode, e.oid.toString('hex'), e.stat]),
      );
      // Stat-clean without a refresh, then clean for status (nothing modified, nothing untracked).
      assert.equal(git(repo, ['diff-files', '--name-only', '-z']).length, 0);
      const status = git(repo, ['status', '--porcelain=v1', '-z', '--untracked-files=all']).toString('latin1').split('\0').filter(Boolean);
      assert.deepEqual(status, specs.map((s) => `A  ${s.path.toString('latin1')}`));
      fs.rmSync(repo, { recursive: true, force: true });
    }),
    fuzzParams(8, 200),
  );
});

const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const indexEntries = fc
  .uniqueArray(
    fc.record({
      path: fc.oneof(relPath, fc.constant(Buffer.from('p'.repeat(5000)))),
      mode: fc.constantFrom(0o100644, 0o100755, 0o120000, 0o160000),
      oid: fc.uint8Array({ minLength: 20, maxLength: 20 }).map((a) => Buffer.from(a)),
      stat: fc.record({ ctimeSec: u32, ctimeNsec: u32, mtimeSec: u32, mtimeNsec: u32, dev: u32, ino: u32, uid: u32, gid: u32, size: u32 }),
    }),
    { maxLength: 10, selector: (e) => e.path.toString('latin1') },
  )
  .map((es) => es.sort((a, b) => Buffer.compare(a.path, b.path)));

test('encoded indexes round-trip through decodeIndex (long names included)', () => {
  fc.assert(
    fc.property(indexEntries, (entries) => {
      const d = decodeIndex(encodeIndex(entries));
      assert.equal(d.version, 2);
      assert.deepEqual(d.extensions, []);
      assert.deepEqual(d.entries.map((e) => ({ path: e.path, mode: e.mode, oid: e.oid, stat: { ...e.stat } })), entries.map((e) => ({ ...e, stat: { ...e.stat } })));
    }),
    fuzzParams(300),
  );
});

function reseal(buf: Buffer): Buffer {
  if (buf.length < 20) return buf;
  const out = Buffer.from(buf);
  createHash('sha1').update(out.subarray(0, out.length - 20)).digest().copy(out, out.length - 20);
  return out;
}

test('mutated indexes, resealed or not: decoded or refused with a SnapError', () => {
  fc.assert(
    fc.property(mutated(indexEntries.map(encodeIndex)), fc.boolean(), (bytes, seal) => {
      const input = seal ? reseal(bytes) : bytes;
      const out = parsesOrRefuses(() => decodeIndex(input));
      if (out.ok) for (const e of out.value.entries) assert.ok(e.path.length > 0 && !e.path.includes(0));
    }),
    fuzzParams(1500),
  );
});

test('random bytes behind the DIRC header (resealed): refused with a SnapError or decoded', () => {
  const header = Buffer.from('DIRC\0\0\0\x02', 'latin1');
  fc.assert(
    fc.property(randomBytes(header, 2048), (bytes) => {
      parsesOrRefuses(() => decodeIndex(reseal(bytes)));
    }),
    fuzzParams(1000),
  );
});
