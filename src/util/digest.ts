/**
 * SHA-1 and SHA-256 hashers with node:crypto's update/digest shape. Under Bun
 * they are Bun's native CryptoHasher, because loading node:crypto costs Bun
 * ~8 ms of CPU on every clone; under Node, node:crypto's createHash, loaded on
 * first use. Same bytes in, same digest out: both are BoringSSL/OpenSSL.
 */
import { createRequire } from 'node:module';

export interface Hasher {
  update(data: Uint8Array | string): Hasher;
  digest(): Buffer;
  digest(encoding: 'hex'): string;
}

type HasherClass = new (algorithm: 'sha1' | 'sha256') => Hasher;
const BunHasher = (globalThis as { Bun?: { CryptoHasher: HasherClass } }).Bun?.CryptoHasher;
let nodeCreateHash: ((algorithm: string) => Hasher) | null = null;

export function createHasher(algorithm: 'sha1' | 'sha256'): Hasher {
  if (BunHasher) return new BunHasher(algorithm);
  nodeCreateHash ??= (createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto')).createHash as unknown as (a: string) => Hasher;
  return nodeCreateHash(algorithm);
}
