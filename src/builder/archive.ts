/**
 * The work-tree archive: the contents of every file and symlink target, in
 * file-table order, as one logical stream cut into chunks, each compressed as an
 * independent zstd frame (so any chunk decompresses on its own, in parallel, in
 * any order). Files larger than a chunk span chunks. buildCdcArchive cuts by
 * content (cdc.ts) and reuses stored chunks (commit builds).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compress } from 'zstd-napi';
import { streamObjects } from './catfile.js';
import { sha256Hex } from '../util/hash.js';
import { checkCdcParams, GearChunker, type CdcParams } from './cdc.js';
import { putCounted } from './put-counted.js';
import { storedWithSize, type ArtifactStore } from '../storage/artifact-store.js';
import { MAX_CHUNK_RAW, type ChunkRef } from '../clonepack/manifest.js';
import type { StoredChunk } from './commit-build.js';

/**
 * The key under which a stored chunk may be reused: its raw digest, zstd level and
 * build format, so a frame is reused only where a cold build would make the same
 * one. Null for a chunk stored without level or format (an older row).
 */
export function chunkReuseKey(c: { rawDigest: string; level?: number; format?: number }): string | null {
  if (c.level === undefined || c.format === undefined) return null;
  return `${c.format}:${c.level}:${c.rawDigest}`;
}

export interface ArchiveItem {
  oid: string; // blob to read, unless `content` is given
  content?: Buffer; // converted work-tree bytes
}

/**
 * The archive cut by content-defined chunking (cdc.ts), for commit builds: each
 * chunk whose frame an earlier build already stored (same raw SHA-256, zstd
 * level and build format: chunkReuseKey; and the store still has the frame) is
 * reused without compressing; the others are
 * compressed and put. Holds at most one chunk (`cdc.max` bytes) in memory, and
 * waits for each put before reading on.
 */
export async function buildCdcArchive(req: {
  repoDir: string;
  items: ArchiveItem[];
  outDir: string;
  cdc: CdcParams;
  level: number;
  /** BUILD_FORMAT of commit-build.ts (part of the reuse key). */
  format: number;
  store: ArtifactStore;
  reuse: ReadonlyMap<string, ChunkRef>; // chunkReuseKey -> stored chunk
}): Promise<{ bytes: number; chunks: StoredChunk[]; reused: number; newBytes: number }> {
  const chunks: StoredChunk[] = [];
  // The client holds up to 12 chunks: never cut one larger than it accepts.
  checkCdcParams(req.cdc, MAX_CHUNK_RAW);
  const chunker = new GearChunker(req.cdc);
  let buf = Buffer.allocUnsafe(req.cdc.max);
  let fill = 0;
  let reused = 0;
  let bytes = 0;
  let newBytes = 0;
  const emit = async () => {
    if (fill === 0) return;
    const raw = buf.subarray(0, fill);
    const made = { rawDigest: sha256Hex(raw), level: req.level, format: req.format };
    const known = req.reuse.get(chunkReuseKey(made)!);
    if (known && known.rawSize === fill && (await storedWithSize(req.store, known))) {
      chunks.push({ digest: known.digest, size: known.size, rawSize: fill, ...made });
      reused++;
    } else {
      const path = join(req.outDir, `cdc-${chunks.length}`);
      writeFileSync(path, compress(raw, { compressionLevel: req.level }));
      const stored = await putCounted(req.store, path, (n) => (newBytes += n));
      chunks.push({ ...stored, rawSize: fill, ...made });
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
