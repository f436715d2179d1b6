/**
 * Checkout conversions. Where .gitattributes makes `git checkout` transform a
 * blob (eol=crlf, ident, working-tree-encoding), the work-tree bytes differ from
 * the blob. We let git itself produce them: read the commit into a private index,
 * ask check-attr which files could be transformed, and check those out with
 * checkout-index into a scratch dir, under the hermetic (default) config that a
 * fresh `git clone` would use. Files whose bytes really differ are "converted":
 * their work-tree content travels in the archive, and the index records its size.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runGit, splitZ } from './gitproc.js';
import { readObjects } from './catfile.js';
import type { TreeItem } from './tree.js';
import { MODE_EXEC, MODE_FILE } from '../clonepack/filetable.js';

const ATTRS = ['eol', 'ident', 'working-tree-encoding'];
const GITATTRIBUTES = Buffer.from('.gitattributes');

function mayConvert(attr: string, value: string): boolean {
  if (attr === 'eol') return value === 'crlf';
  if (attr === 'ident') return value === 'set';
  return value !== 'unspecified' && value !== 'unset';
}

function isAttributesFile(path: Buffer): boolean {
  const slash = path.lastIndexOf(0x2f);
  return path.subarray(slash + 1).equals(GITATTRIBUTES);
}

/** Map from leaf index to the converted work-tree bytes. */
export async function checkoutConversions(repoDir: string, commit: string, leaves: TreeItem[], scratch: string): Promise<Map<number, Buffer>> {
  const result = new Map<number, Buffer>();
  if (!leaves.some((l) => isAttributesFile(l.path))) return result;
  const files = leaves.map((l, i) => ({ l, i })).filter(({ l }) => l.mode === MODE_FILE || l.mode === MODE_EXEC);
  if (files.length === 0) return result;
  mkdirSync(scratch, { recursive: true });
  const env = { GIT_INDEX_FILE: join(scratch, 'index') };
  await runGit(['read-tree', commit], { cwd: repoDir, extraEnv: env });
  const input = Buffer.concat(files.flatMap(({ l }) => [l.path, Buffer.from([0])]));
  const out = splitZ(await runGit(['check-attr', '--cached', '-z', '--stdin', ...ATTRS], { cwd: repoDir, extraEnv: env, input }));
  const byPath = new Map(files.map(({ l, i }) => [l.path.toString('latin1'), i]));
  const candidates = new Set<number>();
  for (let k = 0; k + 2 < out.length; k += 3) {
    if (mayConvert(out[k + 1]!.toString('latin1'), out[k + 2]!.toString('latin1'))) {
      const i = byPath.get(out[k]!.toString('latin1'));
      if (i !== undefined) candidates.add(i);
    }
  }
  if (candidates.size === 0) return result;
  const list = [...candidates].sort((a, b) => a - b);
  const wt = join(scratch, 'wt');
  mkdirSync(wt, { recursive: true });
  await runGit(['--work-tree', wt, 'checkout-index', '-z', '--stdin'], {
    cwd: repoDir,
    extraEnv: env,
    input: Buffer.concat(list.flatMap((i) => [leaves[i]!.path, Buffer.from([0])])),
  });
  const blobs = await readObjects(repoDir, list.map((i) => leaves[i]!.oid));
  list.forEach((i, k) => {
    const worktree = readFileSync(Buffer.concat([Buffer.from(wt + '/'), leaves[i]!.path]));
    if (!worktree.equals(blobs[k]!)) result.set(i, worktree);
  });
  return result;
}
