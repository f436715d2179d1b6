import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gitText, tmpDir } from '../support/git.js';
import { gitLines, runGit } from '../../src/builder/gitproc.js';
import { packObjects } from '../../src/builder/packs.js';
import { IdxOidCache, OidSet } from '../../src/builder/idx-cache.js';
import { commitFiles, gitDir, manyFiles, newRepo, newStore, revListObjects } from './helpers.js';
import { parseIdx } from '../../src/git/idx.js';

test('gitLines yields rev-list output line by line, bytes intact, and fails with git\'s reason', async () => {
  const repo = newRepo();
  const c = commitFiles(repo, { ...manyFiles(300, 50, 60), 'caf\u00e9 \u00fc.txt': 'x\n' });
  const mirror = gitDir(repo);
  const lines: string[] = [];
  for await (const l of gitLines(['rev-list', '--objects', '--stdin'], { cwd: mirror, input: `${c}\n` })) lines.push(l);
  const expected = (await runGit(['rev-list', '--objects', c], { cwd: mirror })).toString('latin1').split('\n').filter(Boolean);
  assert.deepEqual(lines, expected);
  assert.ok(lines.length > 300);
  assert.ok(lines.some((l) => Buffer.from(l, 'latin1').toString('utf8').endsWith('caf\u00e9 \u00fc.txt')), 'non-ASCII path round-trips');
  await assert.rejects(
    (async () => {
      for await (const _ of gitLines(['rev-list', '--objects', '--stdin'], { cwd: mirror, input: `${'0'.repeat(39)}1\n` }));
    })(),
    /git rev-list failed/,
  );
});

test('a streamed input that fails midway fails the run, even though git saw a clean end of input', async () => {
  const repo = newRepo();
  const c = commitFiles(repo, manyFiles(20, 100, 61));
  const mirror = gitDir(repo);
  const oids = revListObjects(mirror, [c]);
  async function* half(): AsyncGenerator<string> {
    yield oids.slice(0, 5).join('\n') + '\n';
    throw new Error('the object list broke');
  }
  await assert.rejects(packObjects(mirror, half(), `${tmpDir('stream-pack')}/p`, ['--non-empty']), /the object list broke/);
  // A whole streamed list packs exactly those objects.
  async function* whole(): AsyncGenerator<string> {
    for (const o of oids) yield `${o}\n`;
  }
  const packs = await packObjects(mirror, whole(), `${tmpDir('stream-pack')}/p`, ['--non-empty']);
  assert.equal(packs.length, 1);
  assert.equal(packs[0]!.objects, oids.length);
  assert.equal(gitText(['rev-parse', '--verify', `${c}^{commit}`], { cwd: mirror }), c);
});

test('IdxOidCache: parses each stored idx once, answers membership, stays within its byte bound', async () => {
  const repo = newRepo();
  const store = newStore();
  const mirror = gitDir(repo);
  const digests: string[] = [];
  const sets: string[][] = [];
  for (let i = 0; i < 3; i++) {
    const c = commitFiles(repo, manyFiles(10, 100, 70 + i, `d${i}`));
    const oids = revListObjects(gitDir(repo), [c, ...(i > 0 ? [`^${c}~1`] : [])]);
    const [p] = await packObjects(mirror, oids.join('\n') + '\n', `${tmpDir('cache-pack')}/p`, ['--non-empty']);
    digests.push((await store.putFile(p!.idxPath)).digest);
    sets.push(oids);
  }
  const one = parseIdx(await store.read(digests[0]!)).oids.length; // bytes of one set's ids
  const cache = new IdxOidCache(2 * one + 20 * 5);
  let reads = 0;
  const counting = { read: async (d: string) => (reads++, store.read(d)) } as unknown as typeof store;
  const a = await cache.get(counting, digests[0]!);
  assert.equal(a.count, sets[0]!.length);
  for (const o of sets[0]!) assert.ok(a.has(Buffer.from(o, 'hex')));
  for (const o of sets[1]!) assert.ok(!a.has(Buffer.from(o, 'hex')));
  assert.ok(!a.has(Buffer.alloc(20)) && !a.has(Buffer.alloc(20, 0xff)));
  await cache.get(counting, digests[0]!);
  assert.equal(reads, 1);
  await cache.get(counting, digests[1]!);
  await cache.get(counting, digests[0]!); // now most recently used
  await cache.get(counting, digests[2]!); // evicts digests[1]
  assert.ok(cache.bytes <= cache.maxBytes, `${cache.bytes} > ${cache.maxBytes}`);
  assert.equal(reads, 3);
  await cache.get(counting, digests[0]!);
  assert.equal(reads, 3);
  await cache.get(counting, digests[1]!);
  assert.equal(reads, 4);
  assert.ok(new OidSet(Buffer.alloc(0)).has(Buffer.alloc(20)) === false);
});
