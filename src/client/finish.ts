/**
 * After the writers: symlinks whose targets spanned archive chunks are made
 * here (their pieces came from several tasks).
 */
import { lstatSync, symlinkSync } from 'node:fs';
import { createHasher } from '../util/digest.js';
import { recordStat, type SharedTable } from './shared-table.js';
import { isConverted, MODE_SYMLINK, type TableEntry } from '../clonepack/filetable.js';
import { SnapError, integrityError } from '../util/errors.js';

export type SymlinkParts = Map<number, { at: number; bytes: Uint8Array }[]>;

export function entryFullPath(root: string, e: TableEntry): Buffer {
  return Buffer.concat([Buffer.from(root + '/'), e.path]);
}

/**
 * Make the symlinks whose targets came in pieces (they spanned archive
 * chunks), checking each against its blob id. Files written in parts are
 * finished by the writer of their last part (EntryWriter.lastPartWritten).
 */
export function finishSymlinkPieces(root: string, editable: boolean, t: SharedTable, symlinkParts: SymlinkParts, table: TableEntry[]): void {
  for (const [i, parts] of symlinkParts) {
    if (table[i]!.mode !== MODE_SYMLINK) throw integrityError('symlink pieces for a non-symlink');
    const target = Buffer.alloc(table[i]!.size);
    for (const p of parts) target.set(p.bytes, p.at);
    if (target.includes(0)) throw new SnapError('invalid', 'a symlink target contains a NUL byte');
    if (editable && !isConverted(table[i]!) && !createHasher('sha1').update(`blob ${target.length}\0`).update(target).digest().equals(table[i]!.oid))
      throw integrityError(`${table[i]!.path.toString('latin1')} from the archive does not match its blob id`);
    const path = entryFullPath(root, table[i]!);
    symlinkSync(target, path);
    if (editable) recordStat(t, i, lstatSync(path, { bigint: true }));
  }
}
