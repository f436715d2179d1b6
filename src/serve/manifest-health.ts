/**
 * Which quarantined artifacts a repository's manifests name, for status. (Sync
 * checks the commit builds and levels it would reuse itself: sync.ts buildIntact.)
 */
import { manifestArtifacts, parseManifest } from '../clonepack/manifest.js';
import type { ArtifactStore, QuarantinedArtifact } from '../storage/artifact-store.js';

/** The quarantined artifacts among these manifests and everything they name. Reads no manifest while nothing is quarantined. */
export async function damagedArtifacts(store: ArtifactStore, manifestDigests: string[]): Promise<QuarantinedArtifact[]> {
  const quarantined = await store.listQuarantined();
  if (quarantined.length === 0) return [];
  const named = new Set<string>();
  for (const digest of new Set(manifestDigests)) {
    named.add(digest);
    try {
      for (const a of manifestArtifacts(parseManifest(await store.read(digest)))) named.add(a.digest);
    } catch {
      // The manifest itself is gone or unreadable: it is listed if quarantined, and names nothing more.
    }
  }
  return quarantined.filter((q) => named.has(q.digest));
}
