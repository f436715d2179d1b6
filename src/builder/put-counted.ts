/** Putting build outputs into the store while counting the bytes that were not stored before. */
import { createReadStream, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { ArtifactRef } from '../clonepack/manifest.js';
import type { ArtifactStore } from '../storage/artifact-store.js';

/** SHA-256 of a file, streamed (packs can be 512 MiB). */
export async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const piece of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(piece as Buffer);
  return h.digest('hex');
}

/** Put `path` (consumed) and call `added(size)` when the store did not hold it yet. */
export async function putCounted(store: ArtifactStore, path: string, added: (n: number) => void): Promise<ArtifactRef> {
  const size = statSync(path).size;
  const digest = await hashFile(path);
  if (!(await store.stat(digest))) added(size);
  const s = await store.putFile(path, digest);
  return { digest: s.digest, size: s.size };
}
