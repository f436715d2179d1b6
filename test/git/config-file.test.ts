import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { formatGitConfig, type ConfigSection } from '../../src/git/config-file.js';
import { SnapError } from '../../src/util/errors.js';
import { git, tempRoot } from './helpers.js';

const root = tempRoot('git-config');
const isInvalid = (e: unknown) => e instanceof SnapError && e.code === 'invalid';

const AWKWARD = [
  'plain',
  '',
  ' leading space',
  'trailing space ',
  '  both  ',
  'inner  double  spaces',
  'has # hash',
  'semi;colon',
  'x"; y # z',
  'quote " inside',
  '"fully quoted"',
  'back\\slash',
  'C:\\path\\to\\',
  'a\\nb (a backslash and an n)',
  'new\nline',
  'two\n\nnewlines\n',
  'tab\there',
  '\tleading tab',
  'trailing tab\t',
  'carriage\rreturn',
  'trailing cr\r',
  '\r',
  'unicode ✓ é 日本',
  '= equals = signs',
  '[brackets]',
  '-starts-with-dash',
  'true',
];

const SECTIONS: ConfigSection[] = [
  {
    name: 'core',
    entries: [
      ['repositoryformatversion', '0'],
      ['filemode', 'true'],
      ['bare', 'false'],
      ['logallrefupdates', 'true'],
    ],
  },
  {
    name: 'remote',
    subsection: 'origin',
    entries: [
      ['url', 'https://example.com/some repo.git'],
      ['fetch', '+refs/heads/*:refs/remotes/origin/*'],
      ['fetch', '+refs/tags/*:refs/tags/*'],
    ],
  },
  { name: 'branch', subsection: 'main', entries: [['remote', 'origin'], ['merge', 'refs/heads/main']] },
  { name: 'awkward', entries: AWKWARD.map((v, i): [string, string] => [`v${i}`, v]) },
  { name: 'Mixed-Case', subsection: 'Sub Section', entries: [['SomeKey', 'kept as written']] },
  { name: 'sub', subsection: 'with "quotes" and \\ backslash', entries: [['k', 'v']] },
  { name: 'sub', subsection: 'dots.in.sub ; # ] [', entries: [['k', 'v']] },
  { name: 'sub', subsection: '', entries: [['k', 'empty subsection']] },
  { name: 'empty', entries: [] },
];

/** git config --list -z: [key, value] pairs in file order. */
function listConfig(file: string): [string, string][] {
  const out = git(root, ['config', '-f', file, '--list', '-z']).toString('utf8');
  return out
    .split('\0')
    .filter((s) => s !== '')
    .map((item) => {
      const nl = item.indexOf('\n');
      return [item.slice(0, nl), item.slice(nl + 1)];
    });
}

function canonicalKey(s: ConfigSection, key: string): string {
  return s.subsection === undefined
    ? `${s.name.toLowerCase()}.${key.toLowerCase()}`
    : `${s.name.toLowerCase()}.${s.subsection}.${key.toLowerCase()}`;
}

test('git config reads every value back unchanged', () => {
  const file = path.join(root, 'ours.config');
  fs.writeFileSync(file, formatGitConfig(SECTIONS));
  const expected = SECTIONS.flatMap((s) => s.entries.map(([k, v]): [string, string] => [canonicalKey(s, k), v]));
  assert.deepEqual(listConfig(file), expected);
  // And one key at a time, the way git itself looks a value up.
  for (const [i, v] of AWKWARD.entries()) {
    const got = git(root, ['config', '-f', file, '-z', '--get', `awkward.v${i}`]).toString('utf8');
    assert.equal(got, v + '\0', JSON.stringify(v));
  }
});

test('formatGitConfig writes the same bytes as git config', () => {
  const file = path.join(root, 'git.config');
  for (const s of SECTIONS) {
    for (const [k, v] of s.entries) {
      const key = s.subsection === undefined ? `${s.name}.${k}` : `${s.name}.${s.subsection}.${k}`;
      git(root, ['config', '-f', file, '--add', '--', key, v]);
    }
  }
  const withEntries = SECTIONS.filter((s) => s.entries.length > 0);
  assert.equal(formatGitConfig(withEntries), fs.readFileSync(file, 'utf8'));
});

test('formatGitConfig reproduces the .git/config git clone writes', () => {
  const src = path.join(root, 'src');
  git(root, ['init', '-q', '-b', 'main', src]);
  git(src, ['commit', '-q', '--allow-empty', '-m', 'empty']);
  const dst = path.join(root, 'dst');
  git(root, ['clone', '-q', src, dst]);
  const text = formatGitConfig([
    {
      name: 'core',
      entries: [
        ['repositoryformatversion', '0'],
        ['filemode', 'true'],
        ['bare', 'false'],
        ['logallrefupdates', 'true'],
      ],
    },
    { name: 'remote', subsection: 'origin', entries: [['url', src], ['fetch', '+refs/heads/*:refs/remotes/origin/*']] },
    { name: 'branch', subsection: 'main', entries: [['remote', 'origin'], ['merge', 'refs/heads/main']] },
  ]);
  assert.equal(text, fs.readFileSync(path.join(dst, '.git', 'config'), 'utf8'));
});

test('formatGitConfig rejects names and values git cannot represent', () => {
  const bad: ConfigSection[] = [
    { name: 'a b', entries: [] },
    { name: 'a.b', entries: [] },
    { name: '', entries: [] },
    { name: 'a', subsection: 'new\nline', entries: [] },
    { name: 'a', subsection: 'nul\0', entries: [] },
    { name: 'a', entries: [['1key', 'v']] },
    { name: 'a', entries: [['key_x', 'v']] },
    { name: 'a', entries: [['', 'v']] },
    { name: 'a', entries: [['k', 'nul\0byte']] },
  ];
  for (const s of bad) assert.throws(() => formatGitConfig([s]), isInvalid, JSON.stringify(s));
});
