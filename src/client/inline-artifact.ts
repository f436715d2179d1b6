/**
 * Artifacts a resolve answer carried inline (Resolved.inline) are checked like
 * downloaded ones: the bytes must hash to the digest and size the manifest
 * names. Same signature as resolve.ts's checkInlineArtifact (the inline
 * branch); the coordinator keeps one of the two.
 */
import { createHash } from 'node:crypto';
import { integrityError } from '../util/errors.js';

export function checkInlineArtifact(bytes: Buffer, a: { digest: string; size: number }): Buffer {
  if (bytes.length !== a.size || createHash('sha256').update(bytes).digest('hex') !== a.digest)
    throw integrityError(`inline artifact ${a.digest.slice(0, 12)} does not match its digest and size`);
  return bytes;
}
