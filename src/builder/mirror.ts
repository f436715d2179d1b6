/**
 * The bare mirror of an upstream, kept under the data dir. Fetches keep the
 * received packs as packs (no loose objects) so history packs can reuse their
 * deltas, and automatic gc is off so nothing is rewritten under a running build.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { runGit } from './gitproc.js';
import { upstreamBounds, upstreamGitEnv } from './upstream.js';
import type { RefEntry } from '../clonepack/manifest.js';

const MIRROR_CONFIG: [string, string][] = [
  ['gc.auto', '0'],
  ['gc.autoPackLimit', '0'],
  ['maintenance.auto', 'false'],
  ['transfer.unpackLimit', '1'],
  ['fetch.unpackLimit', '1'],
  ['core.logAllRefUpdates', 'false'],
];

export async function ensureMirror(dir: string, url: string): Promise<void> {
  if (existsSync(`${dir}/HEAD`)) {
    // Written only when it changed: a sync with nothing new should write (almost) nothing.
    if ((await gitOutput(['config', '--get', 'remote.origin.url'], dir)) !== url) await runGit(['config', 'remote.origin.url', url], { cwd: dir });
    return;
  }
  const tmp = `${dir}.init-${process.pid}-${Date.now()}`;
  mkdirSync(dirname(dir), { recursive: true });
  try {
    await runGit(['init', '--bare', '--quiet', tmp]);
    for (const [k, v] of MIRROR_CONFIG) await runGit(['config', k, v], { cwd: tmp });
    await runGit(['config', 'remote.origin.url', url], { cwd: tmp });
    renameSync(tmp, dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Fetch every branch and tag, pruning what the upstream deleted. */
export async function fetchMirror(dir: string): Promise<void> {
  // pack.threads=1 makes a local upstream's upload-pack deterministic, so two
  // data dirs mirroring the same upstream hold the same packs.
  // --progress: the output that tells a slow upstream from a stalled one (upstreamBounds).
  const bounds = upstreamBounds();
  await runGit(
    ['-c', 'pack.threads=1', 'fetch', '--prune', '--no-tags', '--progress', 'origin', '+refs/heads/*:refs/heads/*', '+refs/tags/*:refs/tags/*'],
    { cwd: dir, env: 'network', extraEnv: upstreamGitEnv(bounds), errorCode: 'unreachable', timeoutMs: bounds.fetchMs, stallMs: bounds.stallMs },
  );
}

export async function setMirrorHead(dir: string, branch: string | null): Promise<void> {
  if (!branch) return;
  const ref = `refs/heads/${branch}`;
  if ((await gitOutput(['symbolic-ref', '-q', 'HEAD'], dir)) !== ref) await runGit(['symbolic-ref', 'HEAD', ref], { cwd: dir });
}

/** A git command's trimmed output, or null when it fails (an unset key, a detached HEAD). */
async function gitOutput(args: string[], cwd: string): Promise<string | null> {
  try {
    return (await runGit(args, { cwd })).toString('utf8').trim();
  } catch {
    return null;
  }
}

/** All branches and tags of the mirror, sorted by name, annotated tags fully peeled. */
export async function snapshotRefs(dir: string): Promise<RefEntry[]> {
  const out = await runGit(
    ['for-each-ref', '--format=%(objectname) %(objecttype) %(*objecttype) %(*objectname) %(refname)', 'refs/heads', 'refs/tags'],
    { cwd: dir },
  );
  const refs: RefEntry[] = [];
  const nested: RefEntry[] = [];
  for (const line of out.toString('utf8').split('\n')) {
    if (!line) continue;
    const m = /^([0-9a-f]{40}) (\w+) (\w*) ([0-9a-f]{40})? ?(refs\/\S+)$/.exec(line);
    if (!m) continue;
    const [, oid, type, peeledType, peeled, name] = m;
    const entry: RefEntry = { name: name!, oid: oid! };
    if (type === 'tag' && peeled) {
      entry.peeled = peeled;
      if (peeledType === 'tag') nested.push(entry);
    }
    refs.push(entry);
  }
  if (nested.length > 0) {
    // Tags of tags: for-each-ref peels one level; one cat-file peels them all (not a git run per tag).
    const out = await runGit(['cat-file', '--batch-check=%(objectname)'], { cwd: dir, input: nested.map((e) => `${e.oid}^{}`).join('\n') + '\n' });
    const lines = out.toString('utf8').split('\n');
    nested.forEach((e, i) => {
      const oid = lines[i] ?? '';
      if (!/^[0-9a-f]{40}$/.test(oid)) throw new Error(`cannot peel tag ${e.name} (${e.oid}): ${oid || 'no answer'}`);
      e.peeled = oid;
    });
  }
  refs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return refs;
}
