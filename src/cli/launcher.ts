/**
 * Makes bin/snapclone, the command users run (`npm run build` and `prepare`
 * run this after tsc). It is bin/snapclone.js with a shebang naming the Bun
 * binary that `npm ci` installed (the exact-pinned optional dependency `bun`;
 * package.json does not allow its postinstall, which would fetch a binary
 * outside the lockfile where the platform package is missing: the platform
 * package @oven/bun-*, checked against the lockfile, holds the binary). Bun
 * starts in ~9 ms where Node takes ~50 ms, and the client runs unchanged on it.
 * No Bun (a platform without its binary, `npm ci --omit=optional` as a server
 * may do: it never uses Bun) or a path a shebang cannot hold: the shebang is Node's,
 * as bin/snapclone.js has. SNAPCLONE_RUNTIME=node at build time asks for Node.
 * Under Bun it loads the front bundle (front-bundle.ts) while that is fresh.
 * The file is made, not committed: the shebang must be an absolute path.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** front-bundle.ts's output, beside main.js, and its chunks (kept in step by hand: importing it would run the bundler). */
const FRONT_NAME = 'main.front.js';
const CHUNK_FILE = /^main\.front-[a-z0-9]+\.js$/;
/** A bundled input as front-bundle.ts lists it: a file of dist/src/cli, or of a sibling folder of dist/src. */
const INPUT_PATH = /^(\.\.\/[a-z]+\/)?[\w.-]+\.js$/;
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const NODE_SHEBANG = '#!/usr/bin/env node';
/** Linux reads at most 256 bytes of a shebang line (127 before 5.1); stay well inside. */
const MAX_SHEBANG = 120;
/**
 * Bun otherwise reads `.env*` and `bunfig.toml` (whose `preload` runs code)
 * from the cwd, and users clone from inside other projects. A shebang passes
 * everything after the interpreter as one argument, which Bun would ignore:
 * `env -S` splits it. --config=/dev/null: read no bunfig at all.
 */
const BUN_FLAGS = '--no-env-file --config=/dev/null';
const ENV = '/usr/bin/env';

/** The Bun binaries `npm ci` may have left, best first: the one bun's postinstall put in place (if someone allowed it), else the platform package's own. */
function bunCandidates(root: string): string[] {
  const out = [join(root, 'node_modules/bun/bin/bun.exe')];
  const oven = join(root, 'node_modules/@oven');
  const prefix = `bun-${process.platform}-${process.arch === 'arm64' ? 'aarch64' : process.arch}`;
  if (existsSync(oven)) for (const d of readdirSync(oven).filter((d) => d.startsWith(prefix)).sort()) out.push(join(oven, d, 'bin/bun'));
  return out;
}

/** The first candidate that runs and says a version (the placeholder bun.exe of a skipped postinstall does not). */
export function findBun(root = ROOT): string | null {
  for (const bin of bunCandidates(root)) {
    try {
      if (/^\d+\.\d+\.\d+/.test(execFileSync(bin, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }))) return bin;
    } catch {
      // not this one
    }
  }
  return null;
}

/** The shebang line that runs `bun` with BUN_FLAGS. */
export function bunShebang(bun: string): string {
  return `#!${ENV} -S ${bun} ${BUN_FLAGS}`;
}

/** Whether this system's env splits -S (coreutils >= 8.30, BSD, macOS; not every busybox) and this Bun takes the flags, exactly as the kernel will call them. */
function shebangRuns(bun: string): boolean {
  try {
    return /^\d+\.\d+\.\d+/.test(execFileSync(ENV, [bunShebang(bun).slice(ENV.length + 3), '--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }));
  } catch {
    return false;
  }
}

/**
 * bin/snapclone's text. `inputs`: the files of dist/src/cli the front bundle
 * was made from (front-bundle.ts says which); the launcher loads the bundle
 * only while it is at least as new as every one of them.
 */
export function launcherText(bun: string | null, inputs: string[] = ['main.js']): string {
  if (bun === null || /\s/.test(bun) || bunShebang(bun).length > MAX_SHEBANG) return `${NODE_SHEBANG}\n// Made by \`npm run build\` (src/cli/launcher.ts): snapclone on Node.\nimport "../dist/src/cli/main.js";\n`;
  // The front bundle only while it is newer than every tsc output it was made from (an incremental emit, tsc --watch, rewrites only the files that changed).
  return `${bunShebang(bun)}
// Made by \`npm run build\` (src/cli/launcher.ts): snapclone on Bun (serve and worker switch to Node).
import { statSync } from 'node:fs';
const at = (p) => { try { return statSync(new URL('../dist/src/cli/' + p, import.meta.url)).mtimeMs; } catch { return -1; } };
const front = at('${FRONT_NAME}');
await import(${JSON.stringify(inputs)}.every((p) => at(p) <= front) ? '../dist/src/cli/${FRONT_NAME}' : '../dist/src/cli/main.js');
`;
}

/** Bundle the client side with Bun (front-bundle.ts); its inputs (paths relative to dist/src/cli), or null (the launcher then loads main.js) if that fails. */
function bundleFront(bun: string, root: string): string[] | null {
  const cli = join(root, 'dist/src/cli');
  const removeBundle = () => {
    for (const f of readdirSync(cli)) if (f === FRONT_NAME || CHUNK_FILE.test(f)) rmSync(join(cli, f), { force: true });
  };
  removeBundle();
  try {
    const inputs: unknown = JSON.parse(execFileSync(bun, [...BUN_FLAGS.split(' '), join(root, 'dist/src/cli/front-bundle.js')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 60_000 }));
    if (!Array.isArray(inputs) || !inputs.includes('main.js') || !inputs.every((p) => typeof p === 'string' && INPUT_PATH.test(p))) throw new Error('bad input list');
    return inputs as string[];
  } catch {
    removeBundle();
    return null;
  }
}

/** Write bin/snapclone (atomically: a running launcher is never seen half written); returns the runtime it names. */
export function writeLauncher(root = ROOT): 'bun' | 'node' {
  let bun = process.env.SNAPCLONE_RUNTIME === 'node' ? null : findBun(root);
  if (bun !== null && !shebangRuns(bun)) {
    process.stderr.write(`snapclone: ${ENV} -S cannot start Bun with ${BUN_FLAGS}; bin/snapclone runs on Node\n`);
    bun = null;
  }
  const inputs = bun === null ? null : bundleFront(bun, root);
  if (bun !== null && inputs === null) process.stderr.write('snapclone: no front bundle; bin/snapclone loads dist/src/cli/main.js\n');
  const text = launcherText(bun, inputs ?? ['main.js']);
  const path = join(root, 'bin/snapclone');
  if (!existsSync(path) || readFileSync(path, 'utf8') !== text) {
    writeFileSync(`${path}.tmp`, text, { mode: 0o755 });
    chmodSync(`${path}.tmp`, 0o755);
    renameSync(`${path}.tmp`, path);
  }
  return text.startsWith(NODE_SHEBANG) ? 'node' : 'bun';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const runtime = writeLauncher();
  if (runtime === 'node') process.stderr.write(`snapclone: bin/snapclone runs on Node (${process.env.SNAPCLONE_RUNTIME === 'node' ? 'SNAPCLONE_RUNTIME=node' : 'no usable Bun binary in node_modules'})\n`);
}
