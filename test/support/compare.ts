/**
 * Test support: compare a snapclone result with a `git clone` of the same upstream.
 *
 *   assert.deepEqual(compareClones(gitCloneDir, snapcloneDir, { mode }), []);
 *
 * Returns human-readable differences, each prefixed with the area it concerns
 * ("worktree:", "diff -r:", "HEAD:", "refs:", "packed-refs:", "loose refs:",
 * "config:", "shallow:", "index:", "objects:", "status:", "fsck:", ".git:").
 * An empty list means no difference was found.
 *
 * Nothing here modifies either directory: git runs with GIT_OPTIONAL_LOCKS=0
 * (so `git status` does not refresh the index) and with discovery stopped at
 * the clone's parent directory.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { gitTry, hermeticEnv } from './git.js';

export interface CompareOptions {
  /** 'files': the work tree only. 'editable': the work tree and the repository. */
  mode: 'editable' | 'files';
  /**
   * 'exec' (default): compare the executable bits (mode & 0o111) of regular files.
   * 'full': compare all permission bits (mode & 0o7777) of files and directories.
   */
  permissions?: 'exec' | 'full';
  /**
   * Config keys (as `git config --list` prints them: section and key lowercase,
   * e.g. 'remote.origin.url') whose values are not compared (presence still is).
   * Their values are also masked in reflog messages ("clone: from <url>").
   */
  ignoreConfigKeys?: string[];
  /** Accept objects in the actual object database that the expected one lacks. Default false. */
  allowExtraObjects?: boolean;
  /** Also run `diff -r --no-dereference` on the work trees. Default true. */
  diff?: boolean;
  /** Most differences reported per area before "... and N more". Default 25. */
  limit?: number;
}

interface Ctx {
  out: string[];
  limit: number;
}

/** Add the messages of one area, truncated to ctx.limit. */
function report(ctx: Ctx, area: string, msgs: string[]): void {
  for (const m of msgs.slice(0, ctx.limit)) ctx.out.push(`${area}: ${m}`);
  if (msgs.length > ctx.limit) ctx.out.push(`${area}: ... and ${msgs.length - ctx.limit} more`);
}

/** Compare two clones; see CompareOptions. Returns [] when they are indistinguishable. */
export function compareClones(expectedDir: string, actualDir: string, opts: CompareOptions): string[] {
  const ctx: Ctx = { out: [], limit: opts.limit ?? 25 };
  const expected = path.resolve(expectedDir);
  const actual = path.resolve(actualDir);
  for (const [which, d] of [
    ['expected', expected],
    ['actual', actual],
  ] as const) {
    if (!isDir(d)) {
      ctx.out.push(`${which} directory ${d} does not exist`);
      return ctx.out;
    }
  }

  compareWorkTrees(ctx, expected, actual, opts.permissions ?? 'exec');
  if (opts.diff ?? true) diffR(ctx, expected, actual);
  if (opts.mode === 'editable') compareRepositories(ctx, expected, actual, opts);
  return ctx.out;
}

// ---------------------------------------------------------------------------
// Paths as bytes

/** Show a path (raw bytes) readably: JSON-quoted if UTF-8, else with \xNN escapes. */
export function showPath(p: Buffer | string): string {
  const b = typeof p === 'string' ? Buffer.from(p, 'latin1') : p;
  const s = b.toString('utf8');
  if (Buffer.from(s, 'utf8').equals(b)) return JSON.stringify(s);
  let r = '';
  for (const byte of b) {
    if (byte === 0x22 || byte === 0x5c) r += '\\' + String.fromCharCode(byte);
    else if (byte >= 0x20 && byte < 0x7f) r += String.fromCharCode(byte);
    else r += '\\x' + byte.toString(16).padStart(2, '0');
  }
  return `"${r}"`;
}

function joinB(root: Buffer, rel: Buffer): Buffer {
  return rel.length === 0 ? root : Buffer.concat([root, Buffer.from('/'), rel]);
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

type EntryType = 'file' | 'dir' | 'symlink' | 'other';

interface Entry {
  rel: Buffer;
  type: EntryType;
  mode: number;
  size: number;
}

/**
 * Every path under root (never following symlinks), keyed by the latin1
 * decoding of its raw bytes (a lossless 1:1 mapping). `skip(rel)` prunes.
 */
function walk(root: string, skip: (rel: Buffer, type: EntryType) => boolean): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const rootB = Buffer.from(root, 'utf8');
  const visit = (rel: Buffer): void => {
    const names = fs.readdirSync(joinB(rootB, rel), { encoding: 'buffer' });
    for (const name of names) {
      const r = rel.length === 0 ? name : Buffer.concat([rel, Buffer.from('/'), name]);
      const st = fs.lstatSync(joinB(rootB, r));
      const type: EntryType = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
      if (skip(r, type)) continue;
      out.set(r.toString('latin1'), { rel: r, type, mode: st.mode, size: st.size });
      if (type === 'dir') visit(r);
    }
  };
  visit(Buffer.alloc(0));
  return out;
}

function sortedKeys(...maps: Map<string, unknown>[]): string[] {
  const keys = new Set<string>();
  for (const m of maps) for (const k of m.keys()) keys.add(k);
  return [...keys].sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
}

function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  // Compare in blocks first: fast for large equal prefixes.
  const block = 65536;
  let i = 0;
  while (i + block <= n && a.subarray(i, i + block).equals(b.subarray(i, i + block))) i += block;
  for (; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

function octal(n: number): string {
  return '0o' + n.toString(8).padStart(3, '0');
}

// ---------------------------------------------------------------------------
// Work trees

function compareWorkTrees(ctx: Ctx, expected: string, actual: string, permissions: 'exec' | 'full'): void {
  const skipGit = (rel: Buffer): boolean => rel.length === 4 && rel.toString('latin1') === '.git';
  const e = walk(expected, skipGit);
  const a = walk(actual, skipGit);
  const eRoot = Buffer.from(expected, 'utf8');
  const aRoot = Buffer.from(actual, 'utf8');
  const msgs: string[] = [];
  // A missing or extra directory is one message, with a count of what is inside.
  const pruned = new Map<string, { msg: number; text: string; count: number }>();
  const prunedAncestor = (k: string): string | undefined => {
    for (let i = k.lastIndexOf('/'); i > 0; i = k.lastIndexOf('/', i - 1)) {
      const anc = k.slice(0, i);
      if (pruned.has(anc)) return anc;
    }
    return undefined;
  };
  for (const k of sortedKeys(e, a)) {
    const x = e.get(k);
    const y = a.get(k);
    if (!x || !y) {
      const anc = prunedAncestor(k);
      if (anc !== undefined) {
        pruned.get(anc)!.count++;
        continue;
      }
      const ent = (x ?? y)!;
      const text = `${x ? 'missing' : 'extra'} ${ent.type} ${showPath(ent.rel)}`;
      if (ent.type === 'dir') pruned.set(k, { msg: msgs.length, text, count: 0 });
      msgs.push(text);
      continue;
    }
    const p = showPath(x.rel);
    if (x.type !== y.type) {
      msgs.push(`${p} is a ${y.type}, expected a ${x.type}`);
      continue;
    }
    if (x.type === 'file') {
      const bx = fs.readFileSync(joinB(eRoot, x.rel));
      const by = fs.readFileSync(joinB(aRoot, y.rel));
      if (!bx.equals(by)) {
        const at = firstDifference(bx, by);
        msgs.push(
          bx.length !== by.length
            ? `${p} content differs: ${by.length} bytes, expected ${bx.length} (first difference at byte ${at})`
            : `${p} content differs at byte ${at} (same size ${bx.length})`,
        );
      }
    } else if (x.type === 'symlink') {
      const tx = fs.readlinkSync(joinB(eRoot, x.rel), { encoding: 'buffer' });
      const ty = fs.readlinkSync(joinB(aRoot, y.rel), { encoding: 'buffer' });
      if (!tx.equals(ty)) msgs.push(`symlink ${p} points to ${showPath(ty)}, expected ${showPath(tx)}`);
    }
    if (permissions === 'full' && x.type !== 'symlink') {
      if ((x.mode & 0o7777) !== (y.mode & 0o7777)) {
        msgs.push(`${p} permissions ${octal(y.mode & 0o7777)}, expected ${octal(x.mode & 0o7777)}`);
      }
    } else if (x.type === 'file' && (x.mode & 0o111) !== (y.mode & 0o111)) {
      msgs.push(`${p} executable bits ${octal(y.mode & 0o111)}, expected ${octal(x.mode & 0o111)}`);
    }
  }
  for (const { msg, text, count } of pruned.values()) {
    if (count > 0) msgs[msg] = `${text} (and ${count} ${count === 1 ? 'entry' : 'entries'} below it)`;
  }
  report(ctx, 'worktree', msgs);
}

function diffR(ctx: Ctx, expected: string, actual: string): void {
  const r = spawnSync('diff', ['-r', '--no-dereference', '-q', '-x', '.git', '--', expected, actual], {
    env: hermeticEnv(),
    maxBuffer: 64 * 2 ** 20,
  });
  if (r.error) {
    report(ctx, 'diff -r', [`could not run diff: ${r.error.message}`]);
    return;
  }
  if (r.status === 0) return;
  const lines = (r.stdout ?? Buffer.alloc(0))
    .toString('utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split(expected + '/').join('').split(actual + '/').join(''));
  const errs = (r.stderr ?? Buffer.alloc(0)).toString('utf8').trim();
  if (errs) lines.push(`(exit ${r.status}) ${errs}`);
  if (lines.length === 0) lines.push(`exit ${r.status} with no output`);
  report(ctx, 'diff -r', lines);
}

// ---------------------------------------------------------------------------
// Repositories

interface Run {
  ok: boolean;
  status: number;
  out: Buffer;
  err: string;
}

function runGit(dir: string, args: string[]): Run {
  const r = gitTry(args, {
    cwd: dir,
    env: { GIT_OPTIONAL_LOCKS: '0', GIT_CEILING_DIRECTORIES: path.dirname(dir) },
  });
  return { ok: r.status === 0, status: r.status, out: r.stdout, err: r.stderr.toString('utf8').trim() };
}

function text(r: Run): string {
  return r.out.toString('utf8').replace(/\n+$/, '');
}

/** Compare two lists of lines as multisets; messages for missing and extra lines. */
function lineDiff(expected: string[], actual: string[], what: string): string[] {
  const count = new Map<string, number>();
  for (const l of expected) count.set(l, (count.get(l) ?? 0) + 1);
  const extra: string[] = [];
  for (const l of actual) {
    const c = count.get(l) ?? 0;
    if (c > 0) count.set(l, c - 1);
    else extra.push(l);
  }
  const msgs: string[] = [];
  for (const [l, c] of count) for (let i = 0; i < c; i++) msgs.push(`missing ${what} ${JSON.stringify(l)}`);
  for (const l of extra) msgs.push(`extra ${what} ${JSON.stringify(l)}`);
  return msgs;
}

function readIf(p: string): Buffer | undefined {
  try {
    return fs.readFileSync(p);
  } catch {
    return undefined;
  }
}

function compareRepositories(ctx: Ctx, expected: string, actual: string, opts: CompareOptions): void {
  const eGit = path.join(expected, '.git');
  const aGit = path.join(actual, '.git');
  if (!isDir(eGit)) {
    ctx.out.push(`expected: ${eGit} is not a directory; cannot compare repositories`);
    return;
  }
  if (!isDir(aGit)) {
    ctx.out.push(`.git: ${aGit} is missing (or not a directory)`);
    return;
  }
  const probe = runGit(actual, ['rev-parse', '--git-dir']);
  if (!probe.ok || text(probe) !== '.git') {
    ctx.out.push(`.git: git does not recognize ${actual} as a repository: ${probe.err || text(probe)}`);
    return;
  }
  const permissions = opts.permissions ?? 'exec';
  const ignoreKeys = new Set((opts.ignoreConfigKeys ?? []).map((k) => k.toLowerCase()));

  // HEAD
  {
    const headOf = (d: string): string => {
      const r = runGit(d, ['rev-parse', '-q', '--verify', 'HEAD']);
      return r.ok ? text(r) : '(unborn)';
    };
    const symOf = (d: string): string => {
      const r = runGit(d, ['symbolic-ref', '-q', 'HEAD']);
      return r.ok ? text(r) : r.status === 1 ? '(detached)' : `(error: ${r.err})`;
    };
    const msgs: string[] = [];
    const [eh, ah] = [headOf(expected), headOf(actual)];
    if (eh !== ah) msgs.push(`rev-parse HEAD is ${ah}, expected ${eh}`);
    const [es, as] = [symOf(expected), symOf(actual)];
    if (es !== as) msgs.push(`symbolic-ref HEAD is ${as}, expected ${es}`);
    report(ctx, 'HEAD', msgs);
  }

  // Refs as git sees them.
  {
    const refsOf = (d: string): string[] => {
      const r = runGit(d, ['for-each-ref', '--format=%(refname) %(objectname) %(*objectname)']);
      return r.ok ? text(r).split('\n').filter(Boolean) : [`(for-each-ref failed: ${r.err})`];
    };
    const er = refsOf(expected);
    const ar = refsOf(actual);
    const msgs = lineDiff(er, ar, 'ref');
    if (msgs.length === 0 && er.join('\n') !== ar.join('\n')) msgs.push('refs listed in a different order');
    report(ctx, 'refs', msgs);
  }

  // packed-refs, byte for byte.
  {
    const ep = readIf(path.join(eGit, 'packed-refs'));
    const ap = readIf(path.join(aGit, 'packed-refs'));
    const msgs: string[] = [];
    if (ep && !ap) msgs.push('.git/packed-refs is missing');
    else if (!ep && ap) msgs.push('.git/packed-refs exists but should not');
    else if (ep && ap && !ep.equals(ap)) {
      const el = ep.toString('utf8').split('\n');
      const al = ap.toString('utf8').split('\n');
      const d = lineDiff(el, al, 'line');
      msgs.push(...(d.length > 0 ? d : ['same lines in a different order']));
    }
    report(ctx, 'packed-refs', msgs);
  }

  // Loose refs: name -> content.
  {
    const looseOf = (g: string): Map<string, string> => {
      const m = new Map<string, string>();
      const refs = path.join(g, 'refs');
      if (!isDir(refs)) return m;
      for (const [, e] of walk(refs, () => false)) {
        if (e.type === 'dir') continue;
        const name = 'refs/' + e.rel.toString('utf8');
        m.set(name, e.type === 'file' ? fs.readFileSync(joinB(Buffer.from(refs), e.rel)).toString('utf8') : `(${e.type})`);
      }
      return m;
    };
    const el = looseOf(eGit);
    const al = looseOf(aGit);
    const msgs: string[] = [];
    for (const k of sortedKeys(el, al)) {
      const x = el.get(k);
      const y = al.get(k);
      if (y === undefined) msgs.push(`missing loose ref ${k} (${JSON.stringify(x)})`);
      else if (x === undefined) msgs.push(`extra loose ref ${k} (${JSON.stringify(y)})`);
      else if (x !== y) msgs.push(`loose ref ${k} is ${JSON.stringify(y)}, expected ${JSON.stringify(x)}`);
    }
    report(ctx, 'loose refs', msgs);
  }

  // Local config.
  const configValues = (d: string): { list: string[]; values: Map<string, string[]> } => {
    const r = runGit(d, ['config', '--local', '--list', '-z']);
    const values = new Map<string, string[]>();
    if (!r.ok) return { list: [`(git config failed: ${r.err})`], values };
    const list: string[] = [];
    for (const item of r.out.toString('utf8').split('\0')) {
      if (item === '') continue;
      const nl = item.indexOf('\n');
      const key = nl < 0 ? item : item.slice(0, nl);
      const value = nl < 0 ? '' : item.slice(nl + 1);
      values.set(key, [...(values.get(key) ?? []), value]);
      list.push(ignoreKeys.has(key.toLowerCase()) ? `${key}=<ignored>` : `${key}=${value}`);
    }
    return { list, values };
  };
  const eConf = configValues(expected);
  const aConf = configValues(actual);
  {
    const msgs = lineDiff([...eConf.list].sort(), [...aConf.list].sort(), 'config entry');
    if (msgs.length === 0 && eConf.list.join('\n') !== aConf.list.join('\n')) {
      msgs.push(`entries in a different order: ${JSON.stringify(aConf.list)}, expected ${JSON.stringify(eConf.list)}`);
    }
    report(ctx, 'config', msgs);
  }

  // Shallow.
  {
    const es = readIf(path.join(eGit, 'shallow'));
    const as = readIf(path.join(aGit, 'shallow'));
    const msgs: string[] = [];
    if (es && !as) msgs.push('.git/shallow is missing');
    else if (!es && as) msgs.push(`.git/shallow exists (${JSON.stringify(as.toString('utf8'))}) but should not`);
    else if (es && as && !es.equals(as)) {
      msgs.push(`.git/shallow is ${JSON.stringify(as.toString('utf8'))}, expected ${JSON.stringify(es.toString('utf8'))}`);
    }
    report(ctx, 'shallow', msgs);
  }

  // Index: staged entries, and the per-entry data git keeps besides timestamps.
  compareIndex(ctx, expected, actual);

  // Objects.
  {
    const reachable = (d: string): Set<string> | string => {
      const r = runGit(d, ['rev-list', '--all', '--objects']);
      if (!r.ok) return r.err;
      return new Set(text(r).split('\n').filter(Boolean).map((l) => l.slice(0, l.indexOf(' ') < 0 ? l.length : l.indexOf(' '))));
    };
    const stored = (d: string): Set<string> | string => {
      const r = runGit(d, ['cat-file', '--batch-all-objects', '--batch-check=%(objectname) %(objecttype)']);
      if (!r.ok) return r.err;
      return new Set(text(r).split('\n').filter(Boolean));
    };
    const msgs: string[] = [];
    const setDiff = (e: Set<string> | string, a: Set<string> | string, what: string, allowExtra: boolean): void => {
      if (typeof e === 'string') {
        msgs.push(`${what}: expected clone failed: ${e}`);
        return;
      }
      if (typeof a === 'string') {
        msgs.push(`${what}: failed: ${a}`);
        return;
      }
      const missing = [...e].filter((o) => !a.has(o)).sort();
      const extra = allowExtra ? [] : [...a].filter((o) => !e.has(o)).sort();
      if (missing.length > 0) {
        msgs.push(`${what}: ${missing.length} missing, e.g. ${missing.slice(0, 5).join(', ')}`);
      }
      if (extra.length > 0) msgs.push(`${what}: ${extra.length} extra, e.g. ${extra.slice(0, 5).join(', ')}`);
    };
    setDiff(reachable(expected), reachable(actual), 'rev-list --all --objects', false);
    setDiff(stored(expected), stored(actual), 'object database', opts.allowExtraObjects ?? false);
    report(ctx, 'objects', msgs);
  }

  // Status must be clean (checked after the index comparison: it reads, never writes, the index here).
  {
    const msgs: string[] = [];
    for (const [which, d] of [
      ['actual', actual],
      ['expected', expected],
    ] as const) {
      const r = runGit(d, ['status', '--porcelain=v1', '-z', '--ignored']);
      if (!r.ok) msgs.push(`${which}: git status failed: ${r.err}`);
      else if (r.out.length > 0) {
        const items = r.out.toString('utf8').split('\0').filter(Boolean);
        msgs.push(`${which === 'expected' ? 'expected clone (git clone!) ' : ''}not clean: ${items.map((s) => JSON.stringify(s)).join(', ')}`);
      }
    }
    report(ctx, 'status', msgs);
  }

  // fsck: the actual clone may print nothing the expected one does not.
  {
    const fsck = (d: string): Run => runGit(d, ['fsck', '--full', '--strict', '--no-progress']);
    const ef = fsck(expected);
    const af = fsck(actual);
    const lines = (r: Run): string[] => (r.out.toString('utf8') + '\n' + r.err).split('\n').filter((l) => l.trim() !== '');
    const msgs: string[] = [];
    if (!af.ok) msgs.push(`git fsck --full --strict exited ${af.status}`);
    const base = new Set(lines(ef));
    for (const l of lines(af)) {
      if (base.has(l)) continue;
      if (opts.allowExtraObjects && /^(dangling|unreachable) \w+ [0-9a-f]+$/.test(l)) continue;
      msgs.push(l);
    }
    if (!ef.ok) msgs.push(`(note: fsck of the expected clone also failed, exit ${ef.status})`);
    report(ctx, 'fsck', msgs);
  }

  // Files under .git (objects/ except objects/info, and the index content, are compared above).
  compareGitDirs(ctx, eGit, aGit, permissions, {
    expected: urlsToMask(eConf.values, ignoreKeys),
    actual: urlsToMask(aConf.values, ignoreKeys),
  });
}

function urlsToMask(values: Map<string, string[]>, ignoreKeys: Set<string>): string[] {
  const out: string[] = [];
  for (const [k, vs] of values) if (ignoreKeys.has(k.toLowerCase())) out.push(...vs.filter((v) => v.length > 0));
  return out.sort((a, b) => b.length - a.length);
}

interface IndexEntry {
  name: Buffer;
  mode: string;
  oid: string;
  stage: string;
  ctime: [number, number];
  mtime: [number, number];
  ino: number;
  uid: number;
  gid: number;
  size: number;
  flags: string;
}

/** Parse `git ls-files -z --stage --debug`: "<mode> <oid> <stage>\t<name>\0" then five "  key: value" lines. */
function readIndex(dir: string): IndexEntry[] | string {
  const r = runGit(dir, ['ls-files', '-z', '--stage', '--debug']);
  if (!r.ok) return r.err;
  const b = r.out;
  const entries: IndexEntry[] = [];
  let i = 0;
  while (i < b.length) {
    const z = b.indexOf(0, i);
    if (z < 0) return `unparsable ls-files output at byte ${i}`;
    const head = b.subarray(i, z);
    const tab = head.indexOf(0x09);
    const [mode, oid, stage] = head.subarray(0, tab).toString('latin1').split(' ') as [string, string, string];
    const name = Buffer.from(head.subarray(tab + 1));
    i = z + 1;
    const fields: Record<string, string> = {};
    for (let n = 0; n < 5; n++) {
      const nl = b.indexOf(0x0a, i);
      if (nl < 0) return `unparsable ls-files --debug output at byte ${i}`;
      const line = b.subarray(i, nl).toString('latin1');
      i = nl + 1;
      for (const part of line.trim().split('\t')) {
        const c = part.indexOf(': ');
        if (c > 0) fields[part.slice(0, c)] = part.slice(c + 2);
      }
    }
    const ts = (s: string | undefined): [number, number] => {
      const [a, c] = (s ?? '0:0').split(':');
      return [Number(a), Number(c)];
    };
    entries.push({
      name,
      mode,
      oid,
      stage,
      ctime: ts(fields.ctime),
      mtime: ts(fields.mtime),
      ino: Number(fields.ino),
      uid: Number(fields.uid),
      gid: Number(fields.gid),
      size: Number(fields.size),
      flags: fields.flags ?? '',
    });
  }
  return entries;
}

function compareIndex(ctx: Ctx, expected: string, actual: string): void {
  const msgs: string[] = [];
  const ei = readIndex(expected);
  const ai = readIndex(actual);
  if (typeof ei === 'string') msgs.push(`expected clone: ls-files failed: ${ei}`);
  if (typeof ai === 'string') msgs.push(`ls-files failed: ${ai}`);
  if (typeof ei === 'string' || typeof ai === 'string') {
    report(ctx, 'index', msgs);
    return;
  }
  const key = (e: IndexEntry): string => e.name.toString('latin1') + '\0' + e.stage;
  const em = new Map(ei.map((e) => [key(e), e]));
  const am = new Map(ai.map((e) => [key(e), e]));
  for (const k of sortedKeys(em, am)) {
    const x = em.get(k);
    const y = am.get(k);
    if (!y) {
      msgs.push(`missing entry ${x!.mode} ${x!.oid} ${showPath(x!.name)}`);
      continue;
    }
    if (!x) {
      msgs.push(`extra entry ${y.mode} ${y.oid} ${showPath(y.name)}`);
      continue;
    }
    const p = showPath(x.name);
    if (x.mode !== y.mode) msgs.push(`${p} mode ${y.mode}, expected ${x.mode}`);
    if (x.oid !== y.oid) msgs.push(`${p} object ${y.oid}, expected ${x.oid}`);
    if (x.size !== y.size) msgs.push(`${p} recorded size ${y.size}, expected ${x.size}`);
    if (x.flags !== y.flags) msgs.push(`${p} flags ${y.flags}, expected ${x.flags}`);
    if (x.uid !== y.uid || x.gid !== y.gid) msgs.push(`${p} uid/gid ${y.uid}/${y.gid}, expected ${x.uid}/${x.gid}`);
  }
  if (msgs.length === 0 && ei.map(key).join('\n') !== ai.map(key).join('\n')) msgs.push('entries in a different order');

  // The stat data must describe the files as they are, or git would have to re-read
  // them (and rewrite the index) on the next command.
  const nsec = ei.some((e) => e.mtime[1] !== 0 || e.ctime[1] !== 0);
  const root = Buffer.from(actual, 'utf8');
  for (const e of ai) {
    if (e.mode === '160000') continue;
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(joinB(root, e.name), { bigint: true });
    } catch {
      continue; // reported as a work tree difference
    }
    const problems: string[] = [];
    const sec = (ns: bigint): number => Number(ns / 1_000_000_000n);
    const sub = (ns: bigint): number => Number(ns % 1_000_000_000n);
    const tsDiffers = (t: [number, number], ns: bigint): boolean =>
      (t[0] >>> 0) !== (sec(ns) >>> 0) || (nsec && t[1] !== sub(ns));
    if (tsDiffers(e.mtime, st.mtimeNs)) problems.push(`mtime ${e.mtime.join(':')} vs file ${sec(st.mtimeNs)}:${sub(st.mtimeNs)}`);
    if (tsDiffers(e.ctime, st.ctimeNs)) problems.push(`ctime ${e.ctime.join(':')} vs file ${sec(st.ctimeNs)}:${sub(st.ctimeNs)}`);
    if (e.size !== Number(st.size & 0xffffffffn)) problems.push(`size ${e.size} vs file ${st.size}`);
    if (e.ino !== Number(st.ino & 0xffffffffn)) problems.push(`ino ${e.ino} vs file ${st.ino}`);
    if (e.uid !== Number(st.uid) || e.gid !== Number(st.gid)) problems.push(`uid/gid ${e.uid}/${e.gid} vs file ${st.uid}/${st.gid}`);
    if (problems.length > 0) msgs.push(`stat data of ${showPath(e.name)} does not match the work tree: ${problems.join(', ')}`);
  }
  report(ctx, 'index', msgs);
}

/** .git contents handled by other checks: compared by name (and type) only here. */
function handledElsewhere(rel: string): boolean {
  return (
    rel === 'index' ||
    rel === 'config' ||
    rel === 'packed-refs' ||
    rel === 'shallow' ||
    rel === 'refs' ||
    rel.startsWith('refs/')
  );
}

function compareGitDirs(
  ctx: Ctx,
  eGit: string,
  aGit: string,
  permissions: 'exec' | 'full',
  masks: { expected: string[]; actual: string[] },
): void {
  // objects/: only objects/ itself, objects/info and what is in it (alternates, say).
  const skip = (rel: Buffer): boolean => {
    const s = rel.toString('latin1');
    return s.startsWith('objects/') && !(s === 'objects/info' || s.startsWith('objects/info/') || s === 'objects/pack');
  };
  const e = walk(eGit, skip);
  const a = walk(aGit, skip);
  const msgs: string[] = [];
  const eRoot = Buffer.from(eGit, 'utf8');
  const aRoot = Buffer.from(aGit, 'utf8');
  for (const k of sortedKeys(e, a)) {
    const x = e.get(k);
    const y = a.get(k);
    if (!y) {
      msgs.push(`missing ${x!.type} .git/${x!.rel.toString('utf8')}`);
      continue;
    }
    if (!x) {
      msgs.push(`extra ${y.type} .git/${y.rel.toString('utf8')}`);
      continue;
    }
    const rel = x.rel.toString('utf8');
    if (x.type !== y.type) {
      msgs.push(`.git/${rel} is a ${y.type}, expected a ${x.type}`);
      continue;
    }
    if (x.type === 'symlink') {
      const tx = fs.readlinkSync(joinB(eRoot, x.rel), { encoding: 'buffer' });
      const ty = fs.readlinkSync(joinB(aRoot, y.rel), { encoding: 'buffer' });
      if (!tx.equals(ty)) msgs.push(`.git/${rel} points to ${showPath(ty)}, expected ${showPath(tx)}`);
      continue;
    }
    if (permissions === 'full' ? (x.mode & 0o7777) !== (y.mode & 0o7777) : x.type === 'file' && (x.mode & 0o111) !== (y.mode & 0o111)) {
      const m = permissions === 'full' ? 0o7777 : 0o111;
      msgs.push(`.git/${rel} permission bits ${octal(y.mode & m)}, expected ${octal(x.mode & m)}`);
    }
    if (x.type !== 'file' || handledElsewhere(rel)) continue;
    const bx = fs.readFileSync(joinB(eRoot, x.rel));
    const by = fs.readFileSync(joinB(aRoot, y.rel));
    if (rel.startsWith('logs/')) {
      const lx = normalizeReflog(bx.toString('utf8'), masks.expected);
      const ly = normalizeReflog(by.toString('utf8'), masks.actual);
      if (lx.join('\n') !== ly.join('\n')) {
        msgs.push(`.git/${rel} is ${JSON.stringify(ly)}, expected ${JSON.stringify(lx)} (timestamps not compared)`);
      }
    } else if (!bx.equals(by)) {
      msgs.push(
        bx.length < 200 && by.length < 200 && !bx.includes(0) && !by.includes(0)
          ? `.git/${rel} is ${JSON.stringify(by.toString('utf8'))}, expected ${JSON.stringify(bx.toString('utf8'))}`
          : `.git/${rel} content differs (${by.length} bytes, expected ${bx.length})`,
      );
    }
  }
  report(ctx, '.git', msgs);
}

/** Reflog lines without their timestamps; masked values replaced by <ignored>. */
function normalizeReflog(s: string, masks: string[]): string[] {
  return s
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      let r = l.replace(/^([0-9a-f]+ [0-9a-f]+ .*?>) \d+ [+-]\d{4}\t/, '$1 <time>\t');
      for (const m of masks) r = r.split(m).join('<ignored>');
      return r;
    });
}
