/**
 * Where immutable artifacts live, addressed by the SHA-256 of their bytes.
 * Writes are create-only and verified: a put whose bytes do not hash to the
 * claimed digest is refused, and putting an existing digest is a no-op.
 * A stored copy found damaged is quarantined: moved aside with a reason, after
 * which it reads as absent until a put of the same digest restores it.
 * Implementations: local disk (storage/local), an S3-compatible bucket
 * (storage/s3), and a bounded disk cache in front of a remote one (storage/cache).
 */
import type { Readable } from 'node:stream';
import { invalid } from '../util/errors.js';
import { isDigest } from '../util/hash.js';

/** Opaque identity of one stored copy of an artifact (the local store: device, inode, size, mtime). */
export type StoredCopy = string;

export interface ArtifactInfo {
  digest: string;
  size: number;
}

/** An artifact moved aside because its stored bytes were found damaged. */
export interface QuarantinedArtifact {
  digest: string;
  reason: string;
  /** When it was quarantined, ms since the epoch. */
  since: number;
}

export interface ArtifactStore {
  /**
   * Move a finished file into the store under its digest. With `digest`, the
   * bytes must hash to it; without, the store computes it (one read either way).
   * The source file is consumed.
   */
  putFile(path: string, digest?: string): Promise<ArtifactInfo>;
  /**
   * Store bytes under their digest (computed here). Like putFile, a put of a
   * quarantined digest, or over a stored copy of the wrong size, stores the new
   * (verified) bytes as a fresh good artifact.
   */
  putBytes(bytes: Uint8Array): Promise<ArtifactInfo>;
  /** Size of a stored artifact, or null if absent or quarantined. */
  stat(digest: string): Promise<ArtifactInfo | null>;
  /**
   * Stream a stored artifact, or the inclusive byte range [start, end]. Throws SnapError('artifact-missing') if absent.
   * `keep: false`: a one-off read (a worker's bootstrap copying packs into its mirror) that a cache must not fill with.
   */
  open(digest: string, range?: { start: number; end: number }, opts?: { keep?: boolean }): Promise<Readable>;
  /** Whole artifact in memory (for small ones: manifests). Throws SnapError('artifact-missing') if absent. */
  read(digest: string): Promise<Buffer>;
  /**
   * Stream the whole stored artifact, with an identity of the stored copy being read: a
   * quarantine given it moves that copy only, never one stored since (a rebuild's put).
   */
  openCopy(digest: string): Promise<{ stream: Readable; copy: StoredCopy }>;
  /**
   * Move a damaged stored copy aside with a reason. False if there was none to move, or
   * `copy` (from openCopy) was given and the stored copy is no longer that one.
   */
  quarantine(digest: string, reason: string, copy?: StoredCopy): Promise<boolean>;
  /** Artifacts quarantined and not restored since. */
  listQuarantined(): Promise<QuarantinedArtifact[]>;
  /** Every stored good artifact (not quarantined ones, not writes in progress), in no set order. */
  list(): AsyncIterable<ArtifactInfo>;
  /**
   * Remove the stored copy of an artifact (garbage collection; serve/gc). True if one was removed.
   * Readers that already opened it keep reading where the backend allows (local: an open file).
   */
  delete(digest: string): Promise<boolean>;
  /** Resolves if the store is reachable and usable now; rejects saying why otherwise (GET /readyz). */
  ping?(): Promise<void>;
  /** Release connections (S3's sockets); the store is not used after. */
  close?(): void;
  /** A local file path for the artifact if the backend has one (lets the server use sendfile-like streaming). */
  localPath?(digest: string): string;
  /**
   * A URL that GETs the artifact (byte ranges work) for `seconds`, straight from the backend,
   * if it can hand those out (S3). It does not check the artifact exists.
   */
  presign?(digest: string, seconds: number): Promise<string>;
}

/**
 * Whether the store holds `a` with the size it should have: a stat, no hash (damage of the
 * same size is found by the server's reads and clients' reports). What a build may reuse or skip.
 */
export async function storedWithSize(store: Pick<ArtifactStore, 'stat'>, a: { digest: string; size: number }): Promise<boolean> {
  return (await store.stat(a.digest))?.size === a.size;
}

/** Argument checks every store makes the same way (a bad digest or range is the caller's bug, said in one line). */
export function checkDigest(digest: string): void {
  if (!isDigest(digest)) throw invalid(`not a sha256 digest: ${JSON.stringify(String(digest).slice(0, 80))}`);
}

export function checkRange(range: { start: number; end: number }): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw invalid(`bad byte range ${start}-${end}`);
  }
}
