/**
 * Test support: upstream repositories for the end-to-end tests.
 *
 * Everything is deterministic: fixed dates, fixed identity (from git.ts), seeded
 * pseudo-random content. So the same git version produces the same object ids
 * on every run and machine (the submodule URL is relative for that reason).
 *
 * Clone these with their `url` (file://): git ignores --depth for plain local
 * paths and copies/hardlinks objects instead of fetching a pack.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { git, gitText, gitTry, fileUrl, GIT_USER } from './git.js';

// ---------------------------------------------------------------------------
// Shared helpers

/** First commit date of every fixture: 2020-01-01T00:00:00Z. Each commit adds an hour. */
export const FIXTURE_EPOCH = 1577836800;

/** A small, fast, seeded PRNG (mulberry32). Returns uint32 values. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** `size` bytes of incompressible pseudo-random data from `seed`. */
export function randomBytes(size: number, seed: number): Buffer {
  const next = prng(seed);
  const words = new Uint32Array(Math.ceil(size / 4));
  for (let i = 0; i < words.length; i++) words[i] = next();
  return Buffer.from(words.buffer, 0, size);
}

/** Path bytes: strings are UTF-8, Buffers are taken as is. */
export type PathLike = string | Buffer;

function pbuf(p: PathLike): Buffer {
  return Buffer.isBuffer(p) ? p : Buffer.from(p, 'utf8');
}

function joinPath(root: string, rel: PathLike): Buffer {
  return Buffer.concat([Buffer.from(root + '/', 'utf8'), pbuf(rel)]);
}

function mkdirParent(full: Buffer): void {
  const slash = full.lastIndexOf(0x2f);
  if (slash > 0) fs.mkdirSync(full.subarray(0, slash), { recursive: true });
}

/** Write a work-tree file (creating parent directories); Buffer paths allow non-UTF-8 names. */
function writeFile(root: string, rel: PathLike, content: string | Buffer, mode = 0o644): void {
  const full = joinPath(root, rel);
  mkdirParent(full);
  fs.writeFileSync(full, content);
  fs.chmodSync(full, mode);
}

function symlink(root: string, rel: PathLike, target: PathLike): void {
  const full = joinPath(root, rel);
  mkdirParent(full);
  fs.symlinkSync(pbuf(target), full);
}

function revParse(cwd: string, rev: string): string {
  return gitText(['rev-parse', '--verify', '-q', rev], { cwd });
}

export interface TagFact {
  /** Short name, e.g. v1.0 */
  name: string;
  /** refs/tags/<name> */
  ref: string;
  /** What the ref points at: the tag object for annotated tags, the tagged object for lightweight ones. */
  oid: string;
  /** The object the tag finally peels to (through any chain of tags of tags). */
  peeled: string;
  peeledType: 'commit' | 'tree' | 'blob';
  /** The commit the tag peels to, or null for a tag on a tree or a blob. */
  commit: string | null;
  annotated: boolean;
}

function readRefs(cwd: string): { branches: Record<string, string>; tags: Record<string, TagFact> } {
  const out = gitText(['for-each-ref', '--format=%(refname) %(objectname) %(objecttype)'], { cwd });
  const branches: Record<string, string> = {};
  const tags: Record<string, TagFact> = {};
  for (const line of out.split('\n')) {
    if (!line) continue;
    const [ref, oid, type] = line.split(' ') as [string, string, string];
    if (ref.startsWith('refs/heads/')) branches[ref.slice('refs/heads/'.length)] = oid;
    else if (ref.startsWith('refs/tags/')) {
      const name = ref.slice('refs/tags/'.length);
      const peeled = revParse(cwd, `${oid}^{}`);
      const peeledType = gitText(['cat-file', '-t', peeled], { cwd }) as TagFact['peeledType'];
      tags[name] = { name, ref, oid, peeled, peeledType, commit: peeledType === 'commit' ? peeled : null, annotated: type === 'tag' };
    }
  }
  return { branches, tags };
}

interface TreeChange {
  path: PathLike;
  /** New content; omit (with remove) to delete. */
  content?: string | Buffer;
  mode?: '100644' | '100755' | '120000';
  remove?: boolean;
}

/**
 * Make a commit on top of `parents[0]` without touching the work tree or the
 * real index (a private index file), and return its id.
 */
function commitTree(
  repo: string,
  parents: string[],
  changes: TreeChange[],
  message: string,
  date: number,
): string {
  const indexFile = path.join(repo, '.git', `fixture-index-${process.pid}`);
  const env = { GIT_INDEX_FILE: indexFile };
  try {
    git(['read-tree', parents[0] as string], { cwd: repo, env });
    for (const c of changes) {
      if (c.remove) {
        git(['update-index', '-z', '--force-remove', '--stdin'], {
          cwd: repo,
          env,
          input: Buffer.concat([pbuf(c.path), Buffer.from([0])]),
        });
        continue;
      }
      const oid = gitText(['hash-object', '-w', '--no-filters', '--stdin'], { cwd: repo, input: c.content ?? '' });
      // --index-info -z takes raw path bytes: "<mode> <oid>\t<path>\0"
      git(['update-index', '-z', '--add', '--index-info'], {
        cwd: repo,
        env,
        input: Buffer.concat([Buffer.from(`${c.mode ?? '100644'} ${oid}\t`), pbuf(c.path), Buffer.from([0])]),
      });
    }
    const tree = gitText(['write-tree'], { cwd: repo, env });
    const args = ['commit-tree', tree];
    for (const p of parents) args.push('-p', p);
    args.push('-m', message);
    return gitText(args, { cwd: repo, date });
  } finally {
    fs.rmSync(indexFile, { force: true });
  }
}

// ---------------------------------------------------------------------------
// The parity repository

export interface ParityRepo {
  /** The upstream: a non-bare repository (work tree at `path`, git dir `path/.git`). */
  path: string;
  /** file:// URL of `path`; clone with this. */
  url: string;
  /** The branch HEAD names: 'main'. */
  headBranch: string;
  /** HEAD commit (= branches.main): a merge commit whose tree holds every parity point. */
  head: string;
  /** Branch name → commit: main, dev (diverged from main), feature/x. */
  branches: Record<string, string>;
  /** Tag name → facts: light, v0.1, v1.0, dev-1.0. */
  tags: Record<string, TagFact>;
  /** Which tag plays which role. */
  tagNames: {
    /** Lightweight tag on an older main commit. */
    lightweight: string;
    /** Annotated tag on the first commit. */
    annotatedOld: string;
    /** Annotated tag on HEAD. */
    annotatedHead: string;
    /** Annotated tag on the tip of dev. */
    dev: string;
    /**
     * Tags (annotated, lightweight, and tags of tags) whose target lies in HEAD's
     * closure but is not the commit: HEAD's root tree, a subtree, blobs.
     */
    onHeadObjects: string[];
    /** Tags on a tree, a blob or (through a tag) a commit that HEAD's closure does not hold. */
    offHeadObjects: string[];
  };
  /** Commits of main's history, oldest first (the merged topic commit not included). */
  mainline: string[];
  submodule: {
    /** Path of the gitlink in the tree (checks out as an empty directory). */
    path: string;
    /** The commit the gitlink records. */
    commit: string;
    /** The URL written to .gitmodules (relative). */
    url: string;
    /** Absolute path of the submodule's upstream repository. */
    upstream: string;
  };
  /** Paths in HEAD's tree (relative to the repo root) for each parity point. */
  paths: ParityPaths;
}

export interface ParityPaths {
  executables: string[];
  symlinkToFile: string;
  symlinkToDir: string;
  symlinkDangling: string;
  symlinkAbsolute: string;
  /** A symlink whose target is the raw bytes `symlinkNonUtf8Target`. */
  symlinkNonUtf8: string;
  symlinkNonUtf8Target: Buffer;
  /** Every symlink: path → raw target bytes. */
  symlinks: Array<{ path: string; target: Buffer }>;
  emptyFiles: string[];
  /** Files with awkward names (space, newline, tab, é, 日本, NFD é, leading dash, quotes, backslash). */
  oddNames: string[];
  /** A file name containing the byte 0xff (not UTF-8). */
  nonUtf8Name: Buffer;
  /** A file 30 directories deep. */
  deepFile: string;
  deepLevels: number;
  largeRandom: { path: string; size: number };
  largeCompressible: { path: string; size: number };
  /** Directory holding `manyCount` small files. */
  manyDir: string;
  manyCount: number;
  /** The attribute-driven files; see `attributes` for the .gitattributes text. */
  crlfFile: string;
  identFile: string;
  utf16File: string;
  filterFile: string;
  attributes: string;
}

const ATTRIBUTES = [
  '*.crlf text eol=crlf',
  '*.id ident',
  '*.utf16 working-tree-encoding=UTF-16LE',
  '*.filt filter=nosuchdriver',
  '',
].join('\n');

const DEEP_LEVELS = 30;
const MANY_COUNT = 400;

/**
 * Create the parity upstream in `dir/parity` (and its submodule's upstream in
 * `dir/sub-upstream`). See ParityRepo for what it contains.
 */
export function makeParityRepo(dir: string, opts: { name?: string } = {}): ParityRepo {
  fs.mkdirSync(dir, { recursive: true });
  let t = FIXTURE_EPOCH;
  const tick = (): number => (t += 3600);

  // The submodule's upstream.
  const subUpstream = path.join(dir, 'sub-upstream');
  git(['init', '-q', subUpstream], { cwd: dir });
  writeFile(subUpstream, 'lib.txt', 'submodule content\n');
  git(['add', '-A'], { cwd: subUpstream });
  git(['commit', '-q', '-m', 'Submodule initial commit'], { cwd: subUpstream, date: tick() });
  const subCommit = revParse(subUpstream, 'HEAD');

  const repo = path.join(dir, opts.name ?? 'parity');
  git(['init', '-q', repo], { cwd: dir });
  // Only affects how fast objects get written here, never what they are.
  git(['config', 'core.looseCompression', '1'], { cwd: repo });
  git(['config', 'pack.compression', '1'], { cwd: repo });

  const commit = (message: string): string => {
    git(['add', '-A'], { cwd: repo });
    git(['commit', '-q', '-m', message], { cwd: repo, date: tick() });
    return revParse(repo, 'HEAD');
  };
  const mainline: string[] = [];

  // C1: a plain start, with files later renamed / deleted / modified.
  writeFile(repo, 'README.md', '# Parity fixture\n\nEvery case snapclone must reproduce.\n');
  writeFile(repo, 'docs/guide.md', '# Guide\n\nStep one.\n');
  writeFile(repo, 'src/a.txt', 'alpha\nbeta\ngamma\n');
  writeFile(repo, 'src/b.txt', 'one\ntwo\nthree\n');
  writeFile(repo, 'src/old-name.txt', 'this file gets renamed\n'.repeat(20));
  writeFile(repo, 'src/to-delete.txt', 'this file gets deleted\n');
  mainline.push(commit('Initial commit'));
  git(['tag', '-a', 'v0.1', '-m', 'First release'], { cwd: repo, date: tick() });

  // C2: the parity points (except large files and the submodule).
  writeFile(repo, '.gitattributes', ATTRIBUTES);
  const crlfFile = 'attr/lines.crlf';
  const identFile = 'attr/keyword.id';
  const utf16File = 'attr/text.utf16';
  const filterFile = 'attr/data.filt';
  writeFile(repo, crlfFile, 'first line\nsecond line\nthird line\n');
  writeFile(repo, identFile, 'version: $Id$\n');
  // git add converts the work-tree encoding (UTF-16LE) to UTF-8 for the blob.
  writeFile(repo, utf16File, Buffer.from('caf\u00e9 \u65e5\u672c \u2014 UTF-8 in the blob, UTF-16LE on disk\n', 'utf16le'));
  writeFile(repo, filterFile, 'filtered by a driver nobody defines (so: passed through)\n');
  writeFile(repo, 'attr/plain.txt', 'no attributes apply here\n');

  const executables = ['bin/run.sh', 'bin/tool', 'bin/empty-exec'];
  writeFile(repo, 'bin/run.sh', '#!/bin/sh\necho hello\n', 0o755);
  writeFile(repo, 'bin/tool', '#!/usr/bin/env node\nconsole.log(1);\n', 0o755);
  writeFile(repo, 'bin/empty-exec', '', 0o755);
  writeFile(repo, 'bin/not-exec.sh', '#!/bin/sh\n# 100755 at first, 100644 from the fourth commit on\n', 0o755);

  const emptyFiles = ['empty/a', 'empty/.keep', 'bin/empty-exec'];
  writeFile(repo, 'empty/a', '');
  writeFile(repo, 'empty/.keep', '');

  const oddNames = [
    'names/with space.txt',
    'names/with\nnewline.txt',
    'names/with\ttab.txt',
    'names/caf\u00e9.txt',
    'names/cafe\u0301-nfd.txt',
    'names/\u65e5\u672c/\u65e5\u672c\u8a9e.txt',
    'names/-leading-dash',
    'names/"quoted"',
    'names/back\\slash',
    'names/.hidden',
    'names/trailing space ',
  ];
  for (const n of oddNames) writeFile(repo, n, `content of ${JSON.stringify(n)}\n`);
  const nonUtf8Name = Buffer.concat([Buffer.from('names/latin1-'), Buffer.from([0xff, 0xe9]), Buffer.from('.txt')]);
  writeFile(repo, nonUtf8Name, 'a file whose name is not UTF-8\n');

  const deepDirs = Array.from({ length: DEEP_LEVELS }, (_, i) => `d${String(i + 1).padStart(2, '0')}`);
  const deepFile = ['deep', ...deepDirs.slice(1), 'leaf.txt'].join('/');
  writeFile(repo, deepFile, 'thirty levels down\n');

  const manyDir = 'many';
  for (let i = 0; i < MANY_COUNT; i++) {
    const sub = String(i % 10).padStart(2, '0');
    writeFile(repo, `${manyDir}/${sub}/file-${String(i).padStart(3, '0')}.txt`, `small file ${i}\n${'x'.repeat(i % 37)}\n`);
  }

  const symlinkNonUtf8Target = Buffer.from([0x74, 0x61, 0x72, 0x67, 0x65, 0x74, 0xff, 0xfe]);
  const symlinks: Array<{ path: string; target: Buffer }> = [
    { path: 'links/to-file', target: Buffer.from('../README.md') },
    { path: 'links/to-dir', target: Buffer.from('../docs') },
    { path: 'links/dangling', target: Buffer.from('does/not/exist') },
    { path: 'links/absolute', target: Buffer.from('/etc/hostname') },
    { path: 'links/non-utf8', target: symlinkNonUtf8Target },
    { path: 'links/to-link', target: Buffer.from('to-file') },
    { path: 'links/loop', target: Buffer.from('loop') },
    { path: 'links/to-exec', target: Buffer.from('../bin/run.sh') },
  ];
  for (const s of symlinks) symlink(repo, s.path, s.target);
  mainline.push(commit('Add every parity case'));

  // C3: large files. A lightweight tag on it.
  const largeRandom = { path: 'large/random.bin', size: 20 * 2 ** 20 };
  const largeCompressible = { path: 'large/compressible.txt', size: 3 * 2 ** 20 };
  writeFile(repo, largeRandom.path, randomBytes(largeRandom.size, 0x5eed));
  writeFile(repo, largeCompressible.path, compressibleText(largeCompressible.size, 7));
  const c3 = commit('Add large files');
  mainline.push(c3);
  git(['tag', 'light', c3], { cwd: repo });

  // A topic branch from C3 (merged into main at the end), built without touching the work tree.
  const topic = commitTree(
    repo,
    [c3],
    [
      { path: 'docs/guide.md', content: '# Guide\n\nStep one.\nStep two (from topic).\n' },
      { path: 'topic.txt', content: 'added on the topic branch\n' },
    ],
    'Topic: extend the guide',
    tick(),
  );
  git(['update-ref', 'refs/heads/topic', topic], { cwd: repo });

  // feature/x from C2.
  const featureX = commitTree(
    repo,
    [mainline[1] as string],
    [{ path: 'feature.txt', content: 'feature x\n' }],
    'Feature x',
    tick(),
  );
  git(['update-ref', 'refs/heads/feature/x', featureX], { cwd: repo });

  // C4: rename, delete, modify, mode change, and the submodule.
  fs.renameSync(path.join(repo, 'src/old-name.txt'), path.join(repo, 'src/new-name.txt'));
  fs.unlinkSync(path.join(repo, 'src/to-delete.txt'));
  writeFile(repo, 'src/a.txt', 'alpha\nBETA\ngamma\ndelta\n');
  fs.chmodSync(path.join(repo, 'bin/not-exec.sh'), 0o644);
  git(['-c', 'protocol.file.allow=always', 'submodule', 'add', '-q', '../sub-upstream', 'vendor/sub'], { cwd: repo, date: t });
  const c4 = commit('Rename, delete, modify; add a submodule');
  mainline.push(c4);

  // dev from C4: two commits main does not have.
  const d1 = commitTree(repo, [c4], [{ path: 'src/b.txt', content: 'one\ntwo (dev)\nthree\n' }], 'Dev: change b', tick());
  const d2 = commitTree(
    repo,
    [d1],
    [
      { path: 'dev-only.txt', content: 'only on dev\n' },
      { path: 'README.md', remove: true },
    ],
    'Dev: add dev-only, drop README',
    tick(),
  );
  git(['update-ref', 'refs/heads/dev', d2], { cwd: repo });
  git(['tag', '-a', 'dev-1.0', '-m', 'Tag on dev', d2], { cwd: repo, date: tick() });

  // M: merge topic into main (HEAD), annotated tag on it.
  git(['merge', '-q', '--no-ff', '-m', "Merge branch 'topic'", 'topic'], { cwd: repo, date: tick() });
  git(['branch', '-q', '-D', 'topic'], { cwd: repo });
  const head = revParse(repo, 'HEAD');
  mainline.push(head);
  git(['tag', '-a', 'v1.0', '-m', 'Release 1.0', head], { cwd: repo, date: tick() });

  // Tags on trees and blobs, and tags of tags. git clone --depth 1 keeps every tag
  // whose (fully peeled) target it fetched: the commit, its trees and its blobs.
  const tagObject = (name: string, target: string, annotated = true): string => {
    const args = annotated ? ['-c', 'advice.nestedTag=false', 'tag', '-a', name, '-m', `Tag ${name}`, target] : ['tag', name, target];
    git(args, { cwd: repo, date: tick() });
    return name;
  };
  const onHeadObjects = [
    tagObject('tree-tag', `${head}^{tree}`),
    tagObject('dir-tag', `${head}:docs`),
    tagObject('blob-tag', `${head}:src/a.txt`),
    tagObject('light-tree', `${head}:src`, false),
    tagObject('light-blob', `${head}:README.md`, false),
    tagObject('nested', 'v1.0'),
    tagObject('nested-twice', 'nested'),
    tagObject('nested-blob', 'blob-tag'),
    // A tag of a tag whose inner tag no ref names any more: only the chain reaches it.
    tagObject('nested-hidden', tagObject('hidden-inner', `${head}:bin/run.sh`)),
  ];
  git(['tag', '-d', 'hidden-inner'], { cwd: repo });
  const offHeadObjects = [
    tagObject('old-blob-tag', `${mainline[0]}:src/to-delete.txt`),
    tagObject('light-old-tree', `${mainline[0]}:src`, false),
    tagObject('nested-old', 'v0.1'),
  ];

  // The gitlink must really be in the commit.
  const lsTree = gitText(['ls-tree', head, 'vendor/sub'], { cwd: repo });
  if (lsTree !== `160000 commit ${subCommit}\tvendor/sub`) {
    throw new Error(`parity fixture: gitlink missing from HEAD (ls-tree: ${JSON.stringify(lsTree)})`);
  }

  const { branches, tags } = readRefs(repo);
  return {
    path: repo,
    url: fileUrl(repo),
    headBranch: 'main',
    head,
    branches,
    tags,
    tagNames: { lightweight: 'light', annotatedOld: 'v0.1', annotatedHead: 'v1.0', dev: 'dev-1.0', onHeadObjects, offHeadObjects },
    mainline,
    submodule: { path: 'vendor/sub', commit: subCommit, url: '../sub-upstream', upstream: subUpstream },
    paths: {
      executables,
      symlinkToFile: 'links/to-file',
      symlinkToDir: 'links/to-dir',
      symlinkDangling: 'links/dangling',
      symlinkAbsolute: 'links/absolute',
      symlinkNonUtf8: 'links/non-utf8',
      symlinkNonUtf8Target,
      symlinks,
      emptyFiles,
      oddNames,
      nonUtf8Name,
      deepFile,
      deepLevels: DEEP_LEVELS,
      largeRandom,
      largeCompressible,
      manyDir,
      manyCount: MANY_COUNT,
      crlfFile,
      identFile,
      utf16File,
      filterFile,
      attributes: ATTRIBUTES,
    },
  };
}

const WORDS = [
  'alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet',
  'kilo', 'lima', 'mike', 'november', 'oscar', 'papa', 'quebec', 'romeo', 'sierra', 'tango',
];

function compressibleText(size: number, seed: number): Buffer {
  const next = prng(seed);
  const parts: string[] = [];
  let len = 0;
  for (let i = 0; len < size; i++) {
    const line = `line ${String(i).padStart(7, '0')}: ${WORDS[next() % WORDS.length]} ${WORDS[next() % WORDS.length]} lorem ipsum dolor sit amet\n`;
    parts.push(line);
    len += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, size);
}

// ---------------------------------------------------------------------------
// The medium repository (realistic history via git fast-import)

export interface MediumRepo {
  /** The repository (bare by default: `dir/medium.git`; else a work tree at `dir/medium`). */
  path: string;
  url: string;
  bare: boolean;
  headBranch: string;
  /** Tip of main. */
  head: string;
  /** main, dev, release/1.x, and any unmerged topic branch. */
  branches: Record<string, string>;
  tags: Record<string, TagFact>;
  /** Commits created, all branches (merges included). */
  commits: number;
  merges: number;
  /** Files in HEAD's tree. */
  files: number;
}

export interface MediumOptions {
  /** Total commits to create (all branches). Default 300. */
  commits?: number;
  /** PRNG seed. Default 1. */
  seed?: number;
  /** Default true. If false, the repository has a checked-out work tree. */
  bare?: boolean;
  /** Directory name inside `dir`. Default medium.git (bare) or medium. */
  name?: string;
}

interface FileState {
  mark: number;
  mode: '100644' | '100755';
}
type Tree = Map<string, FileState>;

const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

let poolCache: Array<{ name: string; text: string }> | undefined;

/** Text files from node_modules (.d.ts of typescript, @types/node, undici), sorted, at most 300 KB each. */
function sourcePool(): Array<{ name: string; text: string }> {
  if (poolCache) return poolCache;
  let root = PROJECT_ROOT;
  if (!fs.existsSync(path.join(root, 'node_modules'))) root = process.cwd();
  const dirs = ['node_modules/typescript/lib', 'node_modules/@types/node', 'node_modules/undici/types'];
  const out: Array<{ name: string; text: string }> = [];
  const walk = (d: string, depth: number): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const full = path.join(d, e.name);
      if (e.isDirectory() && depth < 3) walk(full, depth + 1);
      else if (e.isFile() && /\.(d\.ts|md)$/.test(e.name)) {
        const size = fs.statSync(full).size;
        if (size > 200 && size <= 300 * 1024) out.push({ name: e.name, text: fs.readFileSync(full, 'utf8') });
      }
    }
  };
  for (const d of dirs) walk(path.join(root, d), 0);
  if (out.length < 20) throw new Error(`makeMediumRepo: too few source files under ${root}/node_modules`);
  poolCache = out;
  return out;
}

/**
 * Create a repository with real-looking history in `dir/medium.git`: text files
 * taken from node_modules, modified, renamed, deleted, chmod-ed over `commits`
 * commits on main, topic branches merged back with merge commits, an unmerged
 * release/1.x and a diverged dev, lightweight and annotated tags.
 */
export function makeMediumRepo(dir: string, opts: MediumOptions = {}): MediumRepo {
  const total = Math.max(10, opts.commits ?? 300);
  const bare = opts.bare ?? true;
  const rnd = prng(opts.seed ?? 1);
  const pick = <T>(arr: readonly T[]): T => arr[rnd() % arr.length] as T;
  const chance = (p: number): boolean => rnd() / 2 ** 32 < p;
  const pool = sourcePool();

  fs.mkdirSync(dir, { recursive: true });
  const repo = path.join(dir, opts.name ?? (bare ? 'medium.git' : 'medium'));
  git(bare ? ['init', '-q', '--bare', repo] : ['init', '-q', repo], { cwd: dir });

  const chunks: Buffer[] = [];
  const emit = (s: string | Buffer): void => {
    chunks.push(typeof s === 'string' ? Buffer.from(s, 'utf8') : s);
  };
  const data = (body: string | Buffer): void => {
    const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    emit(`data ${b.length}\n`);
    emit(b);
    emit('\n');
  };

  let nextMark = 1;
  const blobText = new Map<number, string>();
  const blob = (text: string): number => {
    const mark = nextMark++;
    emit(`blob\nmark :${mark}\n`);
    data(text);
    blobText.set(mark, text);
    return mark;
  };

  let time = FIXTURE_EPOCH;
  const ident = (): string => `${GIT_USER.name} <${GIT_USER.email}> ${(time += 1800 + (rnd() % 7200))} +0000`;
  const authors = [
    'Ada Lovelace <ada@example.com>',
    'Grace Hopper <grace@example.com>',
    'Linus Torvalds <linus@example.com>',
    GIT_USER.name + ' <' + GIT_USER.email + '>',
  ];

  let commits = 0;
  let merges = 0;
  const commitMark = new Map<string, number>(); // branch -> tip commit mark
  const treeOf = new Map<number, Tree>(); // commit mark -> tree

  const writeCommit = (branch: string, parents: number[], tree: Tree, message: string): number => {
    const mark = nextMark++;
    emit(`commit refs/heads/${branch}\nmark :${mark}\n`);
    const committer = ident();
    const author = pick(authors) + committer.slice(committer.indexOf('>') + 1);
    emit(`author ${author}\ncommitter ${committer}\n`);
    data(message + '\n');
    const base = parents.length > 0 ? (treeOf.get(parents[0] as number) as Tree) : new Map<string, FileState>();
    if (parents.length > 0) emit(`from :${parents[0]}\n`);
    for (const p of parents.slice(1)) emit(`merge :${p}\n`);
    for (const [p] of base) if (!tree.has(p)) emit(`D ${p}\n`);
    for (const [p, f] of tree) {
      const old = base.get(p);
      if (!old || old.mark !== f.mark || old.mode !== f.mode) emit(`M ${f.mode} :${f.mark} ${p}\n`);
    }
    emit('\n');
    treeOf.set(mark, tree);
    commitMark.set(branch, mark);
    commits++;
    if (parents.length > 1) merges++;
    return mark;
  };

  const dirs = ['src', 'src/core', 'src/util', 'lib', 'types', 'docs', 'test', 'vendor/ts'];
  let fileCounter = 0;
  const newPath = (name: string): string => {
    fileCounter++;
    const base = name.replace(/\.d\.ts$/, '').replace(/[^A-Za-z0-9._-]/g, '_');
    return `${pick(dirs)}/${base}-${fileCounter}.ts`;
  };

  const editText = (text: string): string => {
    const lines = text.split('\n');
    const edits = 1 + (rnd() % 3);
    for (let e = 0; e < edits; e++) {
      const at = rnd() % Math.max(1, lines.length);
      const kind = rnd() % 4;
      if (kind === 0) {
        lines[at] = `${lines[at] ?? ''} // ${pick(WORDS)} ${pick(WORDS)}`;
      } else if (kind === 1) {
        const src = pick(pool).text.split('\n');
        const from = rnd() % Math.max(1, src.length);
        lines.splice(at, 0, ...src.slice(from, from + 1 + (rnd() % 30)));
      } else if (kind === 2 && lines.length > 40) {
        lines.splice(at, 1 + (rnd() % 20));
      } else {
        lines.splice(at, 0, `export const ${pick(WORDS)}_${rnd() % 100000} = ${rnd() % 1000};`);
      }
    }
    return lines.join('\n');
  };

  /** One commit's worth of random changes; `locked` paths are left alone. */
  const mutate = (tree: Tree, locked: Set<string>, touched?: Set<string>): { tree: Tree; summary: string } => {
    const next = new Map(tree);
    const ops = 1 + (rnd() % 3);
    const did: string[] = [];
    for (let i = 0; i < ops; i++) {
      const candidates = [...next.keys()].filter((p) => !locked.has(p));
      const r = rnd() % 100;
      if (r < 62 && candidates.length > 0) {
        const p = pick(candidates);
        const f = next.get(p) as FileState;
        next.set(p, { mark: blob(editText(blobText.get(f.mark) as string)), mode: f.mode });
        touched?.add(p);
        did.push(`update ${path.basename(p)}`);
      } else if (r < 77 || candidates.length < 60) {
        const src = pick(pool);
        const p = newPath(src.name);
        next.set(p, { mark: blob(src.text), mode: '100644' });
        touched?.add(p);
        did.push(`add ${path.basename(p)}`);
      } else if (r < 89) {
        const p = pick(candidates);
        const f = next.get(p) as FileState;
        next.delete(p);
        const np = newPath(path.basename(p).replace(/-\d+\.ts$/, ''));
        // Mostly pure renames, sometimes with a small edit.
        next.set(np, chance(0.7) ? f : { mark: blob(editText(blobText.get(f.mark) as string)), mode: f.mode });
        touched?.add(p);
        touched?.add(np);
        did.push(`rename ${path.basename(p)} to ${path.basename(np)}`);
      } else if (r < 97) {
        const p = pick(candidates);
        next.delete(p);
        touched?.add(p);
        did.push(`remove ${path.basename(p)}`);
      } else {
        const p = pick(candidates);
        const f = next.get(p) as FileState;
        next.set(p, { mark: f.mark, mode: f.mode === '100644' ? '100755' : '100644' });
        touched?.add(p);
        did.push(`chmod ${path.basename(p)}`);
      }
    }
    return { tree: next, summary: did.join(', ') };
  };

  const tag = (name: string, target: number, message?: string): void => {
    if (message === undefined) {
      emit(`reset refs/tags/${name}\nfrom :${target}\n\n`);
    } else {
      emit(`tag ${name}\nfrom :${target}\ntagger ${ident()}\n`);
      data(message + '\n');
    }
  };

  // Initial commit: 150 files from the pool.
  const initial: Tree = new Map();
  for (let i = 0; i < 150; i++) {
    const src = pick(pool);
    initial.set(newPath(src.name), { mark: blob(src.text), mode: '100644' });
  }
  initial.set('README.md', { mark: blob('# Medium fixture\n\nGenerated history for snapclone tests.\n'), mode: '100644' });
  writeCommit('main', [], initial, 'Initial import');

  // Reserve commits for the tail: release/1.x (3) and dev (4).
  const tailReserve = total >= 40 ? 7 : 0;
  // While a topic branch lives, each side leaves alone what the other touched, so
  // the merge (main's tree plus the topic's touched paths) is what git would make.
  let topic: { name: string; touched: Set<string>; mainTouched: Set<string>; left: number } | undefined;
  const mainHistory: number[] = [commitMark.get('main') as number];
  let topicSeq = 0;
  const mergedTopics: string[] = [];
  let releaseMade = false;
  let mainCount = 1;

  while (commits < total - tailReserve) {
    const mainTip = commitMark.get('main') as number;
    // Start a topic branch now and then.
    if (!topic && commits > 5 && chance(0.08) && total - tailReserve - commits > 8) {
      topicSeq++;
      topic = { name: `topic/t${topicSeq}`, touched: new Set(), mainTouched: new Set(), left: 2 + (rnd() % 5) };
      commitMark.set(topic.name, mainTip);
    }
    if (topic && (topic.left === 0 || total - tailReserve - commits <= 1)) {
      // Merge it: main's tree with the topic's touched paths taken from the topic.
      const topicTip = commitMark.get(topic.name) as number;
      const merged = new Map(treeOf.get(mainTip) as Tree);
      const topicTree = treeOf.get(topicTip) as Tree;
      for (const p of topic.touched) {
        const f = topicTree.get(p);
        if (f) merged.set(p, f);
        else merged.delete(p);
      }
      mainHistory.push(writeCommit('main', [mainTip, topicTip], merged, `Merge branch '${topic.name}'`));
      commitMark.delete(topic.name);
      mergedTopics.push(topic.name);
      topic = undefined;
      continue;
    }
    if (topic && chance(0.5)) {
      const tip = commitMark.get(topic.name) as number;
      const { tree, summary } = mutate(treeOf.get(tip) as Tree, topic.mainTouched, topic.touched);
      writeCommit(topic.name, [tip], tree, `${topic.name}: ${summary}`);
      topic.left--;
      continue;
    }
    const { tree, summary } = topic
      ? mutate(treeOf.get(mainTip) as Tree, topic.touched, topic.mainTouched)
      : mutate(treeOf.get(mainTip) as Tree, new Set());
    const m = writeCommit('main', [mainTip], tree, summary.charAt(0).toUpperCase() + summary.slice(1));
    mainHistory.push(m);
    mainCount++;
    if (mainCount % 50 === 0) tag(`v0.${mainCount / 50}`, m);
    if (mainCount % 100 === 0) tag(`v${mainCount / 100}.0`, m, `Release ${mainCount / 100}.0`);
    if (!releaseMade && tailReserve > 0 && commits >= (total - tailReserve) / 2) {
      commitMark.set('release/1.x', m);
      releaseMade = true;
    }
  }

  if (tailReserve > 0) {
    // release/1.x: forked half-way, never merged.
    if (!releaseMade) commitMark.set('release/1.x', commitMark.get('main') as number);
    for (let i = 0; i < 3; i++) {
      const tip = commitMark.get('release/1.x') as number;
      const { tree, summary } = mutate(treeOf.get(tip) as Tree, new Set());
      writeCommit('release/1.x', [tip], tree, `Backport: ${summary}`);
    }
    tag('v1.0.1', commitMark.get('release/1.x') as number, 'Patch release 1.0.1');
    // dev: forked a few commits behind main's tip, so both sides have their own commits.
    commitMark.set('dev', mainHistory[Math.max(0, mainHistory.length - 4)] as number);
    for (let i = 0; i < 4; i++) {
      const tip = commitMark.get('dev') as number;
      const { tree, summary } = mutate(treeOf.get(tip) as Tree, new Set());
      writeCommit('dev', [tip], tree, `Dev: ${summary}`);
    }
    tag('dev-snapshot', commitMark.get('dev') as number);
  }
  const headMark = commitMark.get('main') as number;
  tag('latest', headMark, 'Latest main');

  git(['fast-import', '--quiet', '--done'], { cwd: repo, input: Buffer.concat([...chunks, Buffer.from('done\n')]) });
  // fast-import cannot delete refs; merged topic branches go away like after `git branch -d`.
  if (mergedTopics.length > 0) {
    git(['update-ref', '--stdin'], { cwd: repo, input: mergedTopics.map((b) => `delete refs/heads/${b}\n`).join('') });
  }
  if (!bare) git(['reset', '-q', '--hard'], { cwd: repo });

  const { branches, tags } = readRefs(repo);
  const head = branches.main as string;
  const files = gitText(['ls-tree', '-r', '--name-only', head], { cwd: repo }).split('\n').length;
  return { path: repo, url: fileUrl(repo), bare, headBranch: 'main', head, branches, tags, commits, merges, files };
}

// ---------------------------------------------------------------------------
// The empty repository

export interface EmptyRepo {
  /** A bare repository with no commits at all. */
  path: string;
  url: string;
  /** The (unborn) branch HEAD names. */
  headBranch: string;
}

// ---------------------------------------------------------------------------
// A repository whose HEAD names a branch that does not exist

export interface MissingHeadRepo {
  /** A bare copy of another repository (every branch and tag), HEAD -> refs/heads/<headBranch>. */
  path: string;
  url: string;
  /** The branch HEAD names, which does not exist. */
  headBranch: string;
}

/** Copy `source` as a bare repository `dir/<name>` whose HEAD names a branch nobody made. */
export function makeMissingHeadRepo(dir: string, source: string, opts: { headBranch?: string; name?: string } = {}): MissingHeadRepo {
  const headBranch = opts.headBranch ?? 'nosuch';
  fs.mkdirSync(dir, { recursive: true });
  const repo = path.join(dir, opts.name ?? 'missing-head.git');
  git(['clone', '-q', '--bare', source, repo], { cwd: dir });
  if (gitTry(['rev-parse', '-q', '--verify', `refs/heads/${headBranch}`], { cwd: repo }).status === 0)
    throw new Error(`missing-head fixture: ${headBranch} exists in ${source}`);
  git(['symbolic-ref', 'HEAD', `refs/heads/${headBranch}`], { cwd: repo });
  return { path: repo, url: fileUrl(repo), headBranch };
}

/** Create a bare repository with no commits, HEAD -> refs/heads/<headBranch>, in `dir/empty.git`. */
export function makeEmptyRepo(dir: string, opts: { headBranch?: string; name?: string } = {}): EmptyRepo {
  const headBranch = opts.headBranch ?? 'main';
  fs.mkdirSync(dir, { recursive: true });
  const repo = path.join(dir, opts.name ?? 'empty.git');
  git(['init', '-q', '--bare', `--initial-branch=${headBranch}`, repo], { cwd: dir });
  return { path: repo, url: fileUrl(repo), headBranch };
}
