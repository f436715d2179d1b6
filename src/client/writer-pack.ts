/**
 * Pack tasks (--depth 1): read each blob's slice from an undeltified HEAD
 * pack, inflate it, check its object id, and write every path that uses it.
 * Blobs above STREAM_ABOVE are inflated in streaming fashion.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { lazyZlib } from '../util/lazy-builtin.js';
import { recordStat } from './shared-table.js';
import { blobHash, now, TaskError, type EntryWriter } from './writer-entries.js';
import { parseObjectHeader, OBJ_BLOB } from '../git/pack.js';
import type { WorkerResult, WorkerTask } from './pool-types.js';

/** Objects above this size are inflated in streaming fashion to keep memory flat. */
const STREAM_ABOVE = 32 << 20;

export async function packTask(w: EntryWriter, task: Extract<WorkerTask, { kind: 'pack' }>): Promise<WorkerResult> {
  const table = w.table;
  const fd = openSync(task.packPath, 'r');
  let buf = Buffer.allocUnsafe(1 << 20);
  let files = 0;
  let bytes = 0;
  try {
    const o = task.objects;
    for (let k = 0; k < o.length; ) {
      const offset = o[k]!;
      const length = o[k + 1]!;
      const n = o[k + 2]!;
      const entries = Array.from(o.subarray(k + 3, k + 3 + n));
      k += 3 + n;
      const size = table.sizes[entries[0]!]!;
      if (size > STREAM_ABOVE) {
        await writeLargeBlob(w, fd, offset, length, entries);
      } else {
        if (length > buf.length) buf = Buffer.allocUnsafe(length);
        const data = inflateBlob(w, fd, buf, offset, length, entries[0]!, task.packPath);
        for (const i of entries) w.create(i, data);
      }
      files += entries.length;
      bytes += size * entries.length;
    }
  } finally {
    closeSync(fd);
  }
  return { id: task.id, files, bytes, symlinkPieces: [], ms: w.ms };
}

/** Read, inflate and check one blob held whole in memory. */
function inflateBlob(w: EntryWriter, fd: number, buf: Buffer, offset: number, length: number, first: number, packPath: string): Buffer {
  const size = w.table.sizes[first]!;
  const got = readSync(fd, buf, 0, length, offset);
  if (got !== length) throw new TaskError(`pack ${packPath} is shorter than the file table says`, 'integrity');
  const hdr = parseObjectHeader(buf, 0);
  if (hdr.type !== OBJ_BLOB) throw new TaskError(`object at ${offset} is not a blob`, 'integrity');
  if (hdr.size !== size) throw new TaskError(`blob at ${offset} has ${hdr.size} bytes, the table says ${size}`, 'integrity');
  let t = now();
  const data = inflateBlobData(buf.subarray(hdr.headerLength, length), size, offset);
  w.ms.inflate += now() - t;
  t = now();
  if (data.length !== size) throw new TaskError(`blob at ${offset} inflated to ${data.length} bytes, expected ${size}`, 'integrity');
  if (!w.oidMatches(first, blobHash(size).update(data).digest())) throw new TaskError(`blob for ${w.fullPath(first).toString('latin1')} does not match its object id`, 'integrity');
  w.ms.verify += now() - t;
  return data;
}

/**
 * Deflate expands at most ~1032:1, so Bun's inflate, which takes no output
 * bound, is given only slices whose worst case is bounded (<= 264 MiB from a
 * hostile pack); larger ones go to node:zlib with maxOutputLength. Under Bun
 * that also spares loading node:zlib (~10 ms of CPU) for most small trees, and
 * Bun's inflate is ~30% faster (vuejs/core's 705 blobs: 14 against 19-23 ms).
 */
const BUN_INFLATE_MAX_IN = 256 << 10;
const bunInflate = (globalThis as { Bun?: { inflateSync(data: Uint8Array, opts: { windowBits: number }): Uint8Array } }).Bun?.inflateSync;

export function inflateBlobData(compressed: Buffer, size: number, offset: number): Buffer {
  try {
    if (bunInflate && compressed.length <= BUN_INFLATE_MAX_IN) {
      const out = bunInflate(compressed, { windowBits: 15 });
      return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    }
    return lazyZlib().inflateSync(compressed, { maxOutputLength: Math.max(1, size) });
  } catch (err) {
    throw new TaskError(`blob at ${offset} does not inflate: ${(err as Error).message}`, 'integrity');
  }
}

/** Stream-inflate one large blob into its first path, then copy it to any other paths. */
async function writeLargeBlob(w: EntryWriter, packFd: number, offset: number, length: number, entries: number[]): Promise<void> {
  const table = w.table;
  const first = entries[0]!;
  const size = table.sizes[first]!;
  const head = Buffer.allocUnsafe(Math.min(length, 16));
  readSync(packFd, head, 0, head.length, offset);
  const hdr = parseObjectHeader(head, 0);
  if (hdr.type !== OBJ_BLOB || hdr.size !== size) throw new TaskError(`large object at ${offset} is not the expected blob`, 'integrity');
  const sha = blobHash(size);
  const outs = entries.map((i) => w.openNew(i));
  let written = 0;
  try {
    const inflate = lazyZlib().createInflate();
    const done = new Promise<void>((resolve, reject) => {
      inflate.on('data', (piece: Buffer) => {
        written += piece.length;
        if (written > size) return reject(new TaskError(`large blob at ${offset} inflates past ${size} bytes`, 'integrity'));
        sha.update(piece);
        outs.forEach((fd, k) => w.writeAll(fd, piece, null, w.fullPath(entries[k]!)));
      });
      inflate.on('end', resolve);
      inflate.on('error', (e) => reject(new TaskError(`large blob at ${offset}: ${e.message}`, 'integrity')));
    });
    const slice = Buffer.allocUnsafe(1 << 20);
    for (let pos = offset + hdr.headerLength, end = offset + length; pos < end; ) {
      const n = readSync(packFd, slice, 0, Math.min(slice.length, end - pos), pos);
      if (n === 0) throw new TaskError('pack ended early', 'integrity');
      pos += n;
      if (!inflate.write(Buffer.from(slice.subarray(0, n)))) await new Promise((r) => inflate.once('drain', r));
    }
    inflate.end();
    await done;
    if (written !== size || !w.oidMatches(first, sha.digest())) throw new TaskError(`large blob at ${offset} does not match its object id`, 'integrity');
    entries.forEach((i, k) => recordStat(table, i, fstatSync(outs[k]!, { bigint: true })));
  } finally {
    for (const fd of outs) closeSync(fd);
  }
}
