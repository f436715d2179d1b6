/**
 * The CLI's own parse of plain argument lists (src/cli/args.ts) must be what
 * node:util's parseArgs gives for every list it takes, and it must hand every
 * other list to parseArgs (so its errors are parseArgs' own).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import fc from 'fast-check';
import { parseCommandArgs, parsePlain } from '../../src/cli/args.js';

const OPTIONS: NonNullable<ParseArgsConfig['options']> = {
  server: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  quiet: { type: 'boolean', short: 'q' },
  branch: { type: 'string', short: 'b' },
  depth: { type: 'string' },
  'no-wait': { type: 'boolean' },
};

const TOKENS = ['x', 'a/b', 'dir', '-', '--', '-1', '1', '', '=', '--server', '--server=http://h:1', '--server=', '--json', '--json=1', '-h', '-q', '-qh', '-b', '-b=dev', 'dev', '--branch', '--branch=-x', '--depth', '--depth=1', '--no-wait', '--nope', '-z', '--quiet', '--Quiet', '-x'];

function reference(args: string[]): { ok: true; parsed: unknown } | { ok: false } {
  try {
    const r = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
    return { ok: true, parsed: { values: { ...r.values }, positionals: r.positionals } };
  } catch {
    return { ok: false };
  }
}

test('a plain list parses as parseArgs parses it; any other list is left to parseArgs', () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...TOKENS), { maxLength: 7 }), (args) => {
      const mine = parsePlain(args, OPTIONS);
      const ref = reference(args);
      if (mine === null) return;
      assert.ok(ref.ok, `parsePlain took ${JSON.stringify(args)}, which parseArgs refuses`);
      assert.deepEqual({ values: { ...mine.values }, positionals: mine.positionals }, ref.parsed, JSON.stringify(args));
    }),
    { numRuns: 5000 },
  );
});

test('the lists a clone is given are plain', () => {
  for (const args of [['a/b'], ['a/b', 'dir', '--depth', '1', '-q'], ['a/b', '--mode=files'], ['a/b', 'd', '-b', 'dev', '--server', 'http://127.0.0.1:1', '--json']])
    assert.notEqual(parsePlain(args, { ...OPTIONS, mode: { type: 'string' } }), null, JSON.stringify(args));
});

test('errors are parseArgs\' own', async () => {
  await assert.rejects(parseCommandArgs(['--nope'], OPTIONS), (err: Error) => {
    assert.throws(() => parseArgs({ args: ['--nope'], options: OPTIONS, allowPositionals: true, strict: true }), { message: err.message });
    return true;
  });
});
