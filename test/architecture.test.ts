/**
 * The tree's dependency rules: the client never reaches into the server side,
 * and the format folders stay pure (they import only each other and util).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

function importsOf(folder: string): { file: string; target: string }[] {
  const out: { file: string; target: string }[] = [];
  for (const f of readdirSync(join(SRC, folder))) {
    if (!f.endsWith('.ts')) continue;
    const text = readFileSync(join(SRC, folder, f), 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.\.?\/[^']+)'/g)) out.push({ file: `${folder}/${f}`, target: m[1]! });
  }
  return out;
}

function folderOf(target: string, from: string): string {
  return target.startsWith('./') ? from : target.split('/')[1]!;
}

const ALLOWED: Record<string, string[]> = {
  util: ['util'],
  git: ['git', 'util'],
  clonepack: ['clonepack', 'util'],
  client: ['client', 'clonepack', 'git', 'util'],
  storage: ['storage', 'util'],
  metadata: ['metadata', 'util'],
  queue: ['queue', 'metadata', 'util'],
  build: ['build', 'clonepack', 'git', 'storage', 'util'],
  serve: ['serve', 'build', 'clonepack', 'git', 'storage', 'metadata', 'queue', 'util'],
  cli: ['cli', 'client', 'serve', 'util'],
};

test('every folder imports only what it may', () => {
  const folders = readdirSync(SRC).filter((f) => !f.includes('.'));
  assert.deepEqual(folders.sort(), Object.keys(ALLOWED).sort(), 'a new folder needs a rule here');
  const violations: string[] = [];
  for (const folder of folders) {
    const imports = importsOf(folder);
    assert.ok(imports.length > 0 || folder === 'util', `${folder} has no imports: the scan is broken`);
    for (const { file, target } of imports) {
      const dep = folderOf(target, folder);
      if (!ALLOWED[folder]!.includes(dep)) violations.push(`${file} imports ${target}`);
    }
  }
  assert.deepEqual(violations, []);
});

test('the client imports nothing from the server side', () => {
  const bad = importsOf('client').filter(({ target }) => /^\.\.\/(serve|build|storage|metadata|queue)\//.test(target));
  assert.deepEqual(bad, []);
});
