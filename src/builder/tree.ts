/** The tree of one commit, as git ls-tree reports it, turned into index order. */
import { runGit, splitZ } from './gitproc.js';

export interface TreeItem {
  mode: number;
  type: 'blob' | 'tree' | 'commit';
  oid: string;
  size: number; // blob size; 0 for trees and gitlinks
  path: Buffer;
}

/** Every tree and leaf of `commit`. Leaves come back sorted by path bytes (index order). */
export async function listTree(repoDir: string, commit: string): Promise<{ trees: string[]; leaves: TreeItem[] }> {
  const out = await runGit(['ls-tree', '-r', '-t', '-l', '-z', '--full-tree', commit], { cwd: repoDir });
  const trees: string[] = [];
  const leaves: TreeItem[] = [];
  for (const rec of splitZ(out)) {
    // "<mode> SP <type> SP <oid> SP+ <size> TAB <path>"
    const tab = rec.indexOf(0x09);
    const head = rec.subarray(0, tab).toString('latin1');
    const path = Buffer.from(rec.subarray(tab + 1));
    const m = /^([0-7]{6}) (blob|tree|commit) ([0-9a-f]{40}) +(-|\d+)$/.exec(head);
    if (!m) throw new Error(`unexpected ls-tree line: ${head}`);
    const item: TreeItem = { mode: parseInt(m[1]!, 8), type: m[2] as TreeItem['type'], oid: m[3]!, size: m[4] === '-' ? 0 : Number(m[4]), path };
    if (item.type === 'tree') trees.push(item.oid);
    else leaves.push(item);
  }
  leaves.sort((a, b) => Buffer.compare(a.path, b.path));
  return { trees: [...new Set(trees)], leaves };
}
