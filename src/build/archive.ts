/**
 * The work-tree archive: the contents of every file and symlink target, in
 * file-table order, as one logical stream cut into chunks of `chunkRaw` bytes,
 * each compressed as an independent zstd frame (so any chunk decompresses on
 * its own, in parallel, in any order). Files larger than a chunk span chunks.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compress } from 'zstd-napi';
import { streamObjects } from './catfile.js';
import { sha256Hex } from '../util/hash.js';

export interface BuiltChunk {
  path: string;
  digest: string;
  size: number;
  rawSize: number;
}

export interface ArchiveItem {
  oid: string; // blob to read, unless `content` is given
  content?: Buffer; // converted work-tree bytes
}

export async function buildArchive(repoDir: string, items: ArchiveItem[], outDir: string, chunkRaw: number, level: number): Promise<BuiltChunk[]> {
  const chunks: BuiltChunk[] = [];
  let buf = Buffer.allocUnsafe(chunkRaw);
  let fill = 0;
  const flush = () => {
    if (fill === 0) return;
    const raw = buf.subarray(0, fill);
    const z = compress(raw, { compressionLevel: level });
    const digest = sha256Hex(z);
    const path = join(outDir, `chunk-${chunks.length}`);
    writeFileSync(path, z);
    chunks.push({ path, digest, size: z.length, rawSize: fill });
    buf = Buffer.allocUnsafe(chunkRaw);
    fill = 0;
  };
  const push = (piece: Buffer) => {
    let at = 0;
    while (at < piece.length) {
      const n = Math.min(piece.length - at, chunkRaw - fill);
      piece.copy(buf, fill, at, at + n);
      fill += n;
      at += n;
      if (fill === chunkRaw) flush();
    }
  };
  // Read blobs in runs between converted items, keeping table order.
  let run: string[] = [];
  const drain = async () => {
    if (run.length === 0) return;
    const oids = run;
    run = [];
    await streamObjects(repoDir, oids, { start: () => {}, data: push, end: () => {} });
  };
  for (const item of items) {
    if (item.content) {
      await drain();
      push(item.content);
    } else {
      run.push(item.oid);
    }
  }
  await drain();
  flush();
  return chunks;
}
