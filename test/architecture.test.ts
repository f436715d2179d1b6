/**
 * The tree's dependency rules: the client never reaches into the server side,
 * and the format folders stay pure (they import only each other and util).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, relative, resolve, sep } from 'node:path';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** Every relative import under src/<folder> (subfolders too), with the top-level folder it lands in. */
function importsOf(folder: string): { file: string; target: string; dep: string }[] {
  const out: { file: string; target: string; dep: string }[] = [];
  for (const f of readdirSync(join(SRC, folder), { recursive: true }) as string[]) {
    if (!f.endsWith('.ts')) continue;
    const text = readFileSync(join(SRC, folder, f), 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.\.?\/[^']+)'/g)) {
      const target = m[1]!;
      const landed = relative(SRC, resolve(SRC, folder, dirname(f), target));
      out.push({ file: `${folder}/${f}`, target, dep: landed.split(sep)[0]! });
    }
  }
  return out;
}

const ALLOWED: Record<string, string[]> = {
  util: ['util'],
  git: ['git', 'util'],
  clonepack: ['clonepack', 'util'],
  client: ['client', 'clonepack', 'git', 'util'],
  storage: ['storage', 'util'],
  metadata: ['metadata', 'util'],
  queue: ['queue', 'metadata', 'util'],
  builder: ['builder', 'clonepack', 'git', 'storage', 'util'],
  serve: ['serve', 'builder', 'clonepack', 'git', 'storage', 'metadata', 'queue', 'util'],
  cli: ['cli', 'client', 'serve', 'util'],
};

test('every folder imports only what it may', () => {
  const folders = readdirSync(SRC).filter((f) => !f.includes('.'));
  assert.deepEqual(folders.sort(), Object.keys(ALLOWED).sort(), 'a new folder needs a rule here');
  const violations: string[] = [];
  for (const folder of folders) {
    const imports = importsOf(folder);
    assert.ok(imports.length > 0 || folder === 'util', `${folder} has no imports: the scan is broken`);
    for (const { file, target, dep } of imports) {
      if (!ALLOWED[folder]!.includes(dep)) violations.push(`${file} imports ${target}`);
    }
  }
  assert.deepEqual(violations, []);
});

test('the client imports nothing from the server side', () => {
  const bad = importsOf('client').filter(({ dep }) => ['serve', 'builder', 'storage', 'metadata', 'queue'].includes(dep));
  assert.deepEqual(bad, []);
});
