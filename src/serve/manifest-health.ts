/**
 * Can a published manifest still be served whole? Sync asks before skipping a
 * ref whose commit did not change (a build that lost an artifact must be
 * rebuilt, and the rebuild's puts restore it); status asks which quarantined
 * artifacts a repository's manifests name.
 */
import { manifestArtifacts, parseManifest } from '../clonepack/manifest.js';
import type { ArtifactStore, QuarantinedArtifact, StoredCopy } from '../storage/artifact-store.js';
import { sha256Hex } from '../util/hash.js';

/**
 * True if the manifest is stored intact and every artifact it names is stored
 * (not absent, not quarantined) with the size the manifest gives. Costs one
 * read of the manifest and a stat per artifact, not a hash of each: damage of
 * the same size is found by the server's reads and clients' reports.
 */
export async function manifestIntact(store: ArtifactStore, manifestDigest: string): Promise<boolean> {
  let bytes: Buffer;
  try {
    let read = await readCopy(store, manifestDigest);
    if (sha256Hex(read.bytes) !== manifestDigest) {
      // As integrity.ts confirms damage: a second read, then quarantine only the copy it read
      // (a rebuild's put may have stored a good one meanwhile).
      read = await readCopy(store, manifestDigest);
      if (sha256Hex(read.bytes) !== manifestDigest) {
        await store.quarantine(manifestDigest, `its ${read.bytes.length} stored bytes do not hash to its digest (found by sync)`, read.copy);
        return false;
      }
    }
    bytes = read.bytes;
  } catch {
    return false;
  }
  let artifacts;
  try {
    artifacts = manifestArtifacts(parseManifest(bytes));
  } catch {
    return false;
  }
  for (const a of artifacts) {
    const info = await store.stat(a.digest);
    if (!info || info.size !== a.size) return false;
  }
  return true;
}

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

async function readCopy(store: ArtifactStore, digest: string): Promise<{ bytes: Buffer; copy: StoredCopy }> {
  const { stream, copy } = await store.openCopy(digest);
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return { bytes: Buffer.concat(chunks), copy };
}
