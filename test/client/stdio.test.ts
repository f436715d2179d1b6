/**
 * src/client/stdio.ts, the clone's stdout/stderr without process.stdout/stderr:
 * whether a descriptor is a terminal (a pty from `script`, a pipe, /dev/null)
 * under Node and under the Bun the launcher runs on, and a closed pipe ending
 * the process with 141 as git does on SIGPIPE.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findBun } from '../../src/cli/launcher.js';
import { tmpDir } from '../support/git.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const STDIO = join(ROOT, 'dist/src/client/stdio.js');
const dir = tmpDir('snapclone-stdio');
const probe = join(dir, 'probe.mjs');
writeFileSync(probe, `const s = await import(${JSON.stringify(STDIO)});\ns.writeOut(\`\${s.isTerminal(1)} \${s.isTerminal(2)}\\n\`);\n`);
const flood = join(dir, 'flood.mjs');
writeFileSync(flood, `const s = await import(${JSON.stringify(STDIO)});\nawait new Promise((r) => setTimeout(r, 200));\nfor (let i = 0; i < 1000; i++) s.writeOut('x'.repeat(1000) + '\\n');\ns.writeErr('not reached\\n');\n`);

const runtimes: [string, string][] = [['node', process.execPath]];
const bun = findBun(ROOT);
if (bun) runtimes.push(['bun', bun]);

for (const [name, bin] of runtimes) {
  test(`${name}: isTerminal is true on a pty, false on a pipe and on /dev/null`, () => {
    const piped = spawnSync(bin, [probe], { encoding: 'utf8' });
    assert.equal(piped.stdout, 'false false\n', piped.stderr);
    const devNull = spawnSync('sh', ['-c', `"$0" "$1" 2>/dev/null`, bin, probe], { encoding: 'utf8' });
    assert.equal(devNull.stdout, 'false false\n', devNull.stderr);
    // script(1) runs the command on a pseudo-terminal; its output comes back through our pipe.
    const pty = spawnSync('script', ['-qec', `${bin} ${probe}`, '/dev/null'], { encoding: 'utf8' });
    assert.equal(pty.status, 0, pty.stderr);
    assert.match(pty.stdout, /^true true\r?\n$/);
  });

  test(`${name}: writing to a closed pipe exits 141 at once, like git on SIGPIPE`, () => {
    // head reads one line and goes away; the writer must neither hang nor print an error.
    const status = spawnSync('bash', ['-c', `"$0" "$1" | head -c 10 >/dev/null; echo \${PIPESTATUS[0]}`, bin, flood], { encoding: 'utf8' });
    assert.equal(status.stdout.trim(), '141', status.stderr);
    assert.equal(status.stderr, '');
  });
}
