/**
 * Where immutable artifacts live, addressed by the SHA-256 of their bytes.
 * Writes are create-only and verified: a put whose bytes do not hash to the
 * claimed digest is refused, and putting an existing digest is a no-op.
 * Local disk implements it now; S3-compatible storage will later.
 */
import type { Readable } from 'node:stream';

export interface ArtifactInfo {
  digest: string;
  size: number;
}

export interface ArtifactStore {
  /**
   * Move a finished file into the store under its digest. With `digest`, the
   * bytes must hash to it; without, the store computes it (one read either way).
   * The source file is consumed.
   */
  putFile(path: string, digest?: string): Promise<ArtifactInfo>;
  /** Store bytes under their digest (computed here). */
  putBytes(bytes: Uint8Array): Promise<ArtifactInfo>;
  /** Size of a stored artifact, or null if absent. */
  stat(digest: string): Promise<ArtifactInfo | null>;
  /** Stream a stored artifact, or the inclusive byte range [start, end]. Throws SnapError('not-found') if absent. */
  open(digest: string, range?: { start: number; end: number }): Promise<Readable>;
  /** Whole artifact in memory (for small ones: manifests). */
  read(digest: string): Promise<Buffer>;
  /** A local file path for the artifact if the backend has one (lets the server use sendfile-like streaming). */
  localPath?(digest: string): string;
}
