/**
 * Makes bin/snapclone, the command users run (`npm run build` and `prepare`
 * run this after tsc). It is bin/snapclone.js behind a shebang naming the Bun
 * binary that `npm ci` installed (the exact-pinned npm package `bun`): Bun
 * starts in ~9 ms where Node takes ~50 ms, and the client runs unchanged on it.
 * No Bun (a platform without its binary, optional dependencies omitted, its
 * postinstall not run) or a path a shebang cannot hold: the shebang is Node's,
 * as bin/snapclone.js has. SNAPCLONE_RUNTIME=node at build time asks for Node.
 * The file is made, not committed: the shebang must be an absolute path.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const NODE_SHEBANG = '#!/usr/bin/env node';
/** Linux reads at most 256 bytes of a shebang line (127 before 5.1); stay well inside. */
const MAX_SHEBANG = 120;

/** The Bun binaries `npm ci` may have left, best first: the one bun's postinstall put in place, else the platform package's own. */
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

export function launcherText(bun: string | null): string {
  const usable = bun !== null && !/\s/.test(bun) && bun.length + 2 <= MAX_SHEBANG;
  const shebang = usable ? `#!${bun}` : NODE_SHEBANG;
  return `${shebang}\n// Made by \`npm run build\` (src/cli/launcher.ts): snapclone on ${usable ? 'Bun (serve and worker switch to Node)' : 'Node'}.\nimport './snapclone.js';\n`;
}

/** Write bin/snapclone (atomically: a running launcher is never seen half written); returns the runtime it names. */
export function writeLauncher(root = ROOT): 'bun' | 'node' {
  const bun = process.env.SNAPCLONE_RUNTIME === 'node' ? null : findBun(root);
  const text = launcherText(bun);
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
  if (runtime === 'node') process.stderr.write('snapclone: bin/snapclone runs on Node (no usable Bun binary in node_modules)\n');
}
