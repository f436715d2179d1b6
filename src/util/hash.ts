import { createHasher } from './digest.js';

const HEX64 = /^[0-9a-f]{64}$/;
const HEX40 = /^[0-9a-f]{40}$/;

export function sha256Hex(data: Uint8Array | string): string {
  return createHasher('sha256').update(data).digest('hex');
}

export function sha1Hex(data: Uint8Array | string): string {
  return createHasher('sha1').update(data).digest('hex');
}

/** True for a lowercase hex SHA-256 digest, the only form an artifact id may take. */
export function isDigest(s: unknown): s is string {
  return typeof s === 'string' && HEX64.test(s);
}

/** True for a lowercase hex SHA-1 object id. */
export function isOid(s: unknown): s is string {
  return typeof s === 'string' && HEX40.test(s);
}
