/**
 * `synthetic:<N>` upstreams: a bare repository of N small text files
 * (100-2000 bytes) in a fan-out of a few thousand directories, with a handful
 * of commits, generated once with `git fast-import` and cached by spec.
 *
 * Deterministic: the same spec always gives the same commits (fixed PRNG seed,
 * fixed author dates), so cached copies and fresh ones are interchangeable.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { log, must, rmrf } from './lib.js';

/** synthetic:100k -> 100000; synthetic:2500 -> 2500. */
export function parseSynthetic(spec: string): number | null {
  const m = /^synthetic:(\d+)(k?)$/.exec(spec);
  if (!m) return null;
  return Number(m[1]) * (m[2] ? 1000 : 1);
}

/** xorshift32: small, fast, deterministic. */
function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

const WORDS = (
  'const let var function return if else for while import export from default class extends new this ' +
  'value index count result error options config buffer stream request response handler callback promise ' +
  'await async true false null undefined length push map filter reduce object string number array module ' +
  'require path file data item list key name type state props render update create delete read write open'
).split(' ');
const EXTS = ['js', 'ts', 'c', 'h', 'md', 'json', 'py', 'go', 'txt', 'css'];

/** A file's text: source-like lines of words from a small vocabulary, of about `size` bytes. */
function content(rand: () => number, size: number, version: number): string {
  let s = version ? `// revision ${version}\n` : '';
  while (s.length < size) {
    const indent = '  '.repeat(Math.floor(rand() * 4));
    const n = 2 + Math.floor(rand() * 9);
    let line = indent;
    for (let i = 0; i < n; i++) line += (i ? ' ' : '') + WORDS[Math.floor(rand() * WORDS.length)];
    line += rand() < 0.5 ? ';\n' : ` = ${Math.floor(rand() * 100000)};\n`;
    s += line;
  }
  return s.slice(0, size - 1) + '\n';
}

interface Layout {
  paths: string[];
  sizes: number[];
}

/** Directories: 16 top-level, 8-16 below each, 10-25 leaves below each (~3,300 leaf dirs); files spread over the leaves. */
function layout(files: number, rand: () => number): Layout {
  const leaves: string[] = [];
  const tops = ['src', 'lib', 'test', 'docs', 'tools', 'packages', 'vendor', 'examples', 'scripts', 'include', 'bench', 'assets', 'config', 'internal', 'api', 'plugins'];
  for (const t of tops) {
    const n2 = 8 + Math.floor(rand() * 9);
    for (let b = 0; b < n2; b++) {
      const n3 = 10 + Math.floor(rand() * 16);
      for (let c = 0; c < n3; c++) leaves.push(`${t}/mod${b.toString().padStart(2, '0')}/part${c.toString().padStart(2, '0')}`);
    }
  }
  const paths: string[] = [];
  const sizes: number[] = [];
  for (let i = 0; i < files; i++) {
    const dir = leaves[Math.floor(rand() * leaves.length)]!;
    paths.push(`${dir}/f${i.toString(36)}.${EXTS[i % EXTS.length]}`);
    sizes.push(100 + Math.floor(rand() * 1901));
  }
  return { paths, sizes };
}

/** Write the fast-import stream to `stdin`, honouring back-pressure. */
async function feed(stdin: NodeJS.WritableStream, files: number): Promise<void> {
  const rand = prng(0x5eed + files);
  const { paths, sizes } = layout(files, rand);
  let pending = '';
  const flush = async (force = false) => {
    if (!force && pending.length < 1 << 20) return;
    const ok = stdin.write(pending);
    pending = '';
    if (!ok) await new Promise<void>((r) => stdin.once('drain', () => r()));
  };
  const commits = 5;
  const t = 1_700_000_000;
  for (let c = 0; c < commits; c++) {
    const changed: number[] = [];
    if (c === 0) for (let i = 0; i < files; i++) changed.push(i);
    else for (let k = 0; k < Math.max(1, Math.floor(files / 100)); k++) changed.push(Math.floor(rand() * files));
    const msg = c === 0 ? `Add ${files} files\n` : `Change ${changed.length} files (round ${c})\n`;
    pending += `commit refs/heads/main\nmark :${c + 1}\nauthor Bench <bench@example.invalid> ${t + c * 3600} +0000\ncommitter Bench <bench@example.invalid> ${t + c * 3600} +0000\ndata ${Buffer.byteLength(msg)}\n${msg}`;
    if (c > 0) pending += `from :${c}\n`;
    for (const i of changed) {
      const body = content(rand, sizes[i]!, c);
      pending += `M 100644 inline ${paths[i]}\ndata ${Buffer.byteLength(body)}\n${body}\n`;
      await flush();
    }
    pending += '\n';
    if (c === commits - 1) pending += `tag v1.0\nfrom :${c + 1}\ntagger Bench <bench@example.invalid> ${t + c * 3600} +0000\ndata 5\nv1.0\n\n`;
    await flush(true);
  }
  await flush(true);
}

/** The path of the bare repository for `spec`, generating it under cacheDir first if needed. */
export async function ensureSynthetic(spec: string, cacheDir: string): Promise<string> {
  const files = parseSynthetic(spec);
  if (files === null || files < 1) throw new Error(`bad synthetic upstream ${spec} (want synthetic:<N> or synthetic:<N>k)`);
  const final = join(cacheDir, `synthetic-${files}.git`);
  if (existsSync(join(final, 'refs/heads')) && existsSync(join(final, '.bench-complete'))) return final;
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${final}.tmp-${process.pid}`;
  rmrf(tmp);
  log(`generating ${spec} (${files} files) with git fast-import into ${final}`);
  const t0 = Date.now();
  await must(['git', 'init', '-q', '--bare', '-b', 'main', tmp]);
  const fi = spawn('git', ['-C', tmp, 'fast-import', '--quiet', '--done'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let err = '';
  fi.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((r) => fi.once('close', (code) => r(code)));
  await feed(fi.stdin, files);
  fi.stdin.end('done\n');
  const code = await exited;
  if (code !== 0) throw new Error(`git fast-import failed (${code}): ${err.trim()}`);
  // fast-import packs loosely; repack like a normally maintained repository.
  await must(['git', '-C', tmp, 'repack', '-adq']);
  await must(['git', '-C', tmp, 'symbolic-ref', 'HEAD', 'refs/heads/main']);
  writeFileSync(join(tmp, '.bench-complete'), `${spec}\n`);
  rmrf(final);
  renameSync(tmp, final);
  log(`generated ${spec} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return final;
}
