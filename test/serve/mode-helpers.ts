/** Resolve per clone mode and read a manifest, for the freshness tests. */
import assert from 'node:assert/strict';
import { call } from './helpers.js';
import { parseManifest, type Manifest } from '../../src/clonepack/manifest.js';

export function resolveMode(base: string, repo: string, mode: string, ref = '') {
  return call(base, 'GET', `/v1/repos/${repo}/resolve?ref=${encodeURIComponent(ref)}&mode=${mode}`);
}

export async function manifestOf(base: string, digest: string): Promise<Manifest> {
  const res = await fetch(`${base}/v1/artifacts/${digest}`);
  assert.equal(res.status, 200);
  return parseManifest(Buffer.from(await res.arrayBuffer()));
}
