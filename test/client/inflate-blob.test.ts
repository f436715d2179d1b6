/**
 * inflateBlobData, the inflate of a --depth 1 clone's HEAD-pack blobs, on both
 * runtimes: under Node it is node:zlib with an output bound; under Bun small
 * slices take Bun.inflateSync (no output bound: only slices whose worst case is
 * bounded). Either way the bytes are git's, and corrupt data (a bad header, a
 * flipped Adler-32, an output past the declared size) is an integrity TaskError.
 * The Bun half runs the same checks in a Bun process (skipped without Bun).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import { inflateBlobData } from '../../src/client/writer-pack.js';
import { TaskError } from '../../src/client/writer-entries.js';
import { findBun } from '../../src/cli/launcher.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const bunBinary = findBun(ROOT);

/** The checks, as a script that runs the same way in this process and in a Bun process. */
const CHECKS = `
const { inflateBlobData } = await import(${JSON.stringify(join(ROOT, 'dist/src/client/writer-pack.js'))});
const { TaskError } = await import(${JSON.stringify(join(ROOT, 'dist/src/client/writer-entries.js'))});
const { deflateSync } = await import('node:zlib');
const out = [];
const text = Buffer.from('line of a source file\\n'.repeat(5000));
const big = Buffer.alloc(3 << 20, 7); // compresses to ~3 KiB: a small slice with a large output
for (const src of [text, big, Buffer.alloc(0)]) out.push(inflateBlobData(deflateSync(src), src.length, 0).equals(src));
const refused = (f) => { try { f(); return 'accepted'; } catch (e) { return e instanceof TaskError && e.code === 'integrity' ? 'integrity' : String(e); } };
const flipped = deflateSync(text); flipped[flipped.length - 1] ^= 1;
out.push(refused(() => inflateBlobData(Buffer.from([1, 2, 3, 4, 5]), 5, 0)));
out.push(refused(() => inflateBlobData(flipped, text.length, 0)));
// Larger than the table says: Bun's path returns it and the caller's size check refuses it; node:zlib stops at the bound.
out.push(refused(() => { const d = inflateBlobData(deflateSync(text), 10, 0); if (d.length !== 10) throw new TaskError('size', 'integrity'); }));
console.log(JSON.stringify(out));
`;

const EXPECTED = [true, true, true, 'integrity', 'integrity', 'integrity'];

test('Node: blobs inflate to their bytes; a bad header, a flipped Adler-32 or a larger output is an integrity error', () => {
  const src = Buffer.from('x'.repeat(1000));
  assert.ok(inflateBlobData(deflateSync(src), src.length, 0).equals(src));
  assert.throws(() => inflateBlobData(Buffer.from([1, 2, 3]), 3, 0), (e: unknown) => e instanceof TaskError && e.code === 'integrity');
  const got = execFileSync(process.execPath, ['--input-type=module', '-e', CHECKS], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(got.trim().split('\n').pop()!), EXPECTED);
});

test('Bun: the same checks through Bun.inflateSync', { skip: bunBinary === null && 'no Bun installed' }, () => {
  const got = execFileSync(bunBinary!, ['--no-env-file', '--config=/dev/null', '-e', CHECKS], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(got.trim().split('\n').pop()!), EXPECTED);
});
