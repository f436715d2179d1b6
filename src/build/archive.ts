/**
 * The work-tree archive: the contents of every file and symlink target, in
 * file-table order, as one logical stream cut into chunks, each compressed as an
 * independent zstd frame (so any chunk decompresses on its own, in parallel, in
 * any order). Files larger than a chunk span chunks. buildArchive cuts fixed
 * `chunkRaw` pieces (the old builder.ts); buildCdcArchive cuts by content (cdc.ts)
 * and reuses stored chunks (commit builds).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compress } from 'zstd-napi';
import { streamObjects } from './catfile.js';
import { sha256Hex } from '../util/hash.js';
import { GearChunker, type CdcParams } from './cdc.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import type { ChunkRef } from '../clonepack/manifest.js';
import type { StoredChunk } from './commit-build.js';

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

/**
 * The archive cut by content-defined chunking (cdc.ts), for commit builds: each
 * chunk whose raw bytes an earlier build already stored (same SHA-256, and the
 * store still has the frame) is reused without compressing; the others are
 * compressed and put. Holds at most one chunk (`cdc.max` bytes) in memory, and
 * waits for each put before reading on.
 */
export async function buildCdcArchive(req: {
  repoDir: string;
  items: ArchiveItem[];
  outDir: string;
  cdc: CdcParams;
  level: number;
  store: ArtifactStore;
  reuse: ReadonlyMap<string, ChunkRef>;
}): Promise<{ bytes: number; chunks: StoredChunk[]; reused: number; newBytes: number }> {
  const chunks: StoredChunk[] = [];
  const chunker = new GearChunker(req.cdc);
  let buf = Buffer.allocUnsafe(req.cdc.max);
  let fill = 0;
  let reused = 0;
  let bytes = 0;
  let newBytes = 0;
  const emit = async () => {
    if (fill === 0) return;
    const raw = buf.subarray(0, fill);
    const rawDigest = sha256Hex(raw);
    const known = req.reuse.get(rawDigest);
    if (known && known.rawSize === fill && (await req.store.stat(known.digest))?.size === known.size) {
      chunks.push({ digest: known.digest, size: known.size, rawSize: fill, rawDigest });
      reused++;
    } else {
      const z = compress(raw, { compressionLevel: req.level });
      const path = join(req.outDir, `cdc-${chunks.length}`);
      writeFileSync(path, z);
      const digest = sha256Hex(z);
      if (!(await req.store.stat(digest))) newBytes += z.length;
      await req.store.putFile(path, digest);
      chunks.push({ digest, size: z.length, rawSize: fill, rawDigest });
    }
    bytes += fill;
    fill = 0;
  };
  const push = async (piece: Buffer) => {
    let at = 0;
    const base = chunker.offset;
    for (const cut of chunker.push(piece)) {
      const end = cut - base;
      piece.copy(buf, fill, at, end);
      fill += end - at;
      at = end;
      await emit();
    }
    piece.copy(buf, fill, at);
    fill += piece.length - at;
  };
  let run: string[] = [];
  const drain = async () => {
    if (run.length === 0) return;
    const oids = run;
    run = [];
    await streamObjects(req.repoDir, oids, { start: () => {}, data: push, end: () => {} });
  };
  for (const item of req.items) {
    if (item.content) {
      await drain();
      await push(item.content);
    } else {
      run.push(item.oid);
    }
  }
  await drain();
  await emit();
  buf = Buffer.alloc(0);
  return { bytes, chunks, reused, newBytes };
}
