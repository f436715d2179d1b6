import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chunkSizes, DEFAULT_ARCHIVE_CDC, GEAR, GearChunker, groupBlobs, type BlobInfo } from '../../src/builder/cdc.js';
import { prng, randomBytes } from '../support/fixtures.js';

const SMALL = { min: 2 << 10, avg: 8 << 10, max: 32 << 10 };

function digests(data: Buffer, sizes: number[]): string[] {
  let at = 0;
  return sizes.map((n) => {
    const d = createHash('sha256').update(data.subarray(at, at + n)).digest('hex');
    at += n;
    return d;
  });
}

test('gear table is fixed: 256 distinct 32-bit values, the same in every process', () => {
  assert.equal(GEAR.length, 256);
  assert.equal(new Set(GEAR).size, 256);
  // Changing the table changes every chunk of every archive (no reuse across the change): pin it.
  assert.deepEqual([GEAR[0], GEAR[1], GEAR[255]], [3284656055, 2933452912, 3721521207]);
  assert.ok(GEAR.some((x) => x > 2 ** 31) && GEAR.some((x) => x < 2 ** 31));
});

test('chunk sizes stay within min/max and average near avg', () => {
  const data = randomBytes(4 << 20, 7);
  const sizes = chunkSizes(data, SMALL);
  assert.equal(sizes.reduce((a, b) => a + b, 0), data.length);
  for (const s of sizes.slice(0, -1)) assert.ok(s >= SMALL.min && s <= SMALL.max, `chunk of ${s}`);
  const mean = data.length / sizes.length;
  assert.ok(mean > SMALL.avg * 0.6 && mean < SMALL.avg * 1.6, `mean ${mean}`);
});

test('default archive parameters: sizes within min..max, mean near avg', () => {
  const data = randomBytes(24 << 20, 3);
  const sizes = chunkSizes(data);
  for (const s of sizes.slice(0, -1)) assert.ok(s >= DEFAULT_ARCHIVE_CDC.min && s <= DEFAULT_ARCHIVE_CDC.max, `chunk of ${s}`);
  const mean = data.length / sizes.length;
  assert.ok(mean > DEFAULT_ARCHIVE_CDC.avg * 0.6 && mean < DEFAULT_ARCHIVE_CDC.avg * 1.6, `mean ${mean}`);
});

test('cut points do not depend on how the stream is split into buffers', () => {
  const data = randomBytes(1 << 20, 11);
  const whole = new GearChunker(SMALL).push(data);
  const next5 = prng(5);
  const rnd = () => next5() / 2 ** 32;
  for (let round = 0; round < 5; round++) {
    const c = new GearChunker(SMALL);
    const cuts: number[] = [];
    let at = 0;
    while (at < data.length) {
      const n = Math.min(data.length - at, round === 0 ? 1 : 1 + Math.floor(rnd() * 20000));
      cuts.push(...c.push(data.subarray(at, at + n)));
      at += n;
    }
    assert.deepEqual(cuts, whole);
  }
});

test('an edit in the middle of a large stream changes only the chunks around it', () => {
  const data = randomBytes(2 << 20, 21);
  const edited = Buffer.concat([data.subarray(0, 1 << 20), Buffer.from('inserted bytes here'), data.subarray((1 << 20) + 100)]);
  const a = digests(data, chunkSizes(data, SMALL));
  const b = digests(edited, chunkSizes(edited, SMALL));
  const common = b.filter((d) => a.includes(d)).length;
  assert.ok(a.length > 100);
  assert.ok(b.length - common <= 3, `${b.length - common} of ${b.length} chunks changed`);
  // And a non-CDC cut (fixed size) would change every chunk after the edit: the test can tell.
  const fixed = (buf: Buffer) => digests(buf, Array.from({ length: Math.ceil(buf.length / SMALL.avg) }, (_, i) => Math.min(SMALL.avg, buf.length - i * SMALL.avg)));
  const fa = fixed(data);
  assert.ok(fixed(edited).filter((d) => !fa.includes(d)).length > 50);
});

test('blob groups: deterministic, bounded, and an edit moves only nearby groups', () => {
  const next9 = prng(9);
  const rnd = () => next9() / 2 ** 32;
  const hex = () => Array.from({ length: 40 }, () => '0123456789abcdef'[Math.floor(rnd() * 16)]).join('');
  const blobs: BlobInfo[] = Array.from({ length: 3000 }, () => ({ oid: hex(), size: Math.floor(rnd() * 3000) }));
  const g1 = groupBlobs(blobs, SMALL);
  assert.deepEqual(groupBlobs(blobs, SMALL), g1);
  assert.deepEqual(g1.flat(), blobs);
  for (const g of g1.slice(0, -1)) {
    const raw = g.reduce((a, b) => a + b.size, 0);
    assert.ok(raw >= SMALL.min && raw <= SMALL.max, `group of ${raw}`);
  }
  const mean = blobs.reduce((a, b) => a + b.size, 0) / g1.length;
  assert.ok(mean > SMALL.avg * 0.5 && mean < SMALL.avg * 2, `mean ${mean}`);
  // Replace one blob in the middle and insert another: most groups keep their exact blob lists.
  const edited = [...blobs.slice(0, 1500), { oid: hex(), size: 500 }, { oid: hex(), size: 700 }, ...blobs.slice(1501)];
  const key = (g: BlobInfo[]) => g.map((b) => b.oid).join();
  const before = new Set(g1.map(key));
  const g2 = groupBlobs(edited, SMALL);
  const changed = g2.filter((g) => !before.has(key(g))).length;
  assert.ok(changed <= 3, `${changed} of ${g2.length} groups changed`);
  // A blob of at least avg bytes closes its group; one past max starts its own.
  const big = groupBlobs([{ oid: 'f'.repeat(40), size: 100 }, { oid: 'f'.repeat(40), size: SMALL.max + 1 }, { oid: 'f'.repeat(40), size: 1 }], SMALL);
  assert.deepEqual(big.map((g) => g.length), [1, 1, 1]);
});
