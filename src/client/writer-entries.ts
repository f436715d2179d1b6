/**
 * Creating one work-tree entry, the step every writer task ends in: the file
 * (O_CREAT|O_EXCL|O_NOFOLLOW, git's 0666/0777 before the umask) or symlink,
 * its bytes, and (editable) its stat data for .git/index from the open
 * descriptor; plus the blob-id check of bytes from the archive.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, symlinkSync, writeSync } from 'node:fs';
import { createHasher, type Hasher } from '../util/digest.js';
import { entryPath, recordStat, type SharedTable } from './shared-table.js';
import { FLAG_CONVERTED, MODE_EXEC, MODE_SYMLINK } from '../clonepack/filetable.js';
import type { PhaseMs } from './pool-types.js';

export const now = () => performance.now();
const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const OPEN_PART = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW;

export class TaskError extends Error {
  constructor(
    message: string,
    readonly code: 'integrity' | 'invalid' | 'internal',
  ) {
    super(message);
  }
}

export class EntryWriter {
  private readonly rootBuf: Buffer;
  /** Reading back files written in parts, 1 MiB at a time (one buffer per writer). */
  private readBuf: Buffer | null = null;
  /** Time per kind of work in the current task. */
  ms!: PhaseMs;

  constructor(
    readonly table: SharedTable,
    root: Uint8Array,
    /** Editable clones: stat data for .git/index, and blob ids checked. */
    readonly editable: boolean,
  ) {
    this.rootBuf = Buffer.from(root);
  }

  fullPath(i: number): Buffer {
    return Buffer.concat([this.rootBuf, entryPath(this.table, i)]);
  }

  fileMode(i: number): number {
    return this.table.modes[i] === MODE_EXEC ? 0o777 : 0o666; // as git does; the umask applies
  }

  /** A new file for streaming writes (large blobs), its stat data recorded by the caller. */
  openNew(i: number): number {
    return openSync(this.fullPath(i), CREATE, this.fileMode(i));
  }

  /** Write all of `data`; a failure (ENOSPC...) names the file, which writeSync's error does not. */
  writeAll(fd: number, data: Uint8Array, position: number | null, path: Buffer): void {
    try {
      for (let off = 0; off < data.length; ) {
        off += writeSync(fd, data, off, data.length - off, position === null ? null : position + off);
      }
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.path === undefined) e.path = path.toString();
      throw err;
    }
  }

  /** Create one complete file or symlink and record its stat data. */
  create(i: number, data: Uint8Array): void {
    const t = now();
    try {
      this.createUntimed(i, data);
    } finally {
      this.ms.write += now() - t;
    }
  }

  private createUntimed(i: number, data: Uint8Array): void {
    const path = this.fullPath(i);
    if (this.table.modes[i] === MODE_SYMLINK) {
      if (data.length === 0 || data.includes(0)) throw new TaskError(`symlink ${path.toString('latin1')} has an empty target or a NUL byte`, 'invalid');
      symlinkSync(Buffer.from(data.buffer, data.byteOffset, data.length), path);
      if (this.editable) recordStat(this.table, i, lstatSync(path, { bigint: true }));
      return;
    }
    const fd = openSync(path, CREATE, this.fileMode(i));
    try {
      if (data.length) this.writeAll(fd, data, null, path);
      if (this.editable) recordStat(this.table, i, fstatSync(fd, { bigint: true }));
    } finally {
      closeSync(fd);
    }
  }

  /** One chunk's part of a file spanning chunks, at its position; the main thread stats it once every part is in. */
  writePart(i: number, piece: Uint8Array, at: number): void {
    const t = now();
    const path = this.fullPath(i);
    const fd = openSync(path, OPEN_PART, this.fileMode(i));
    try {
      this.writeAll(fd, piece, at, path);
    } finally {
      closeSync(fd);
    }
    this.ms.write += now() - t;
  }

  /**
   * The last part of a file written in parts is in: editable clones read it
   * back to check it against its blob id (unless a checkout conversion made it)
   * and record its stat data. Returns whether this call wrote the last part.
   */
  lastPartWritten(i: number): boolean {
    if (Atomics.sub(this.table.parts, i, 1) !== 1) return false;
    if (!this.editable) return true;
    const t = now();
    const path = this.fullPath(i);
    const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      if ((this.table.flags[i]! & FLAG_CONVERTED) === 0) {
        const hash = blobHash(this.table.sizes[i]!);
        this.readBuf ??= Buffer.allocUnsafe(1 << 20);
        for (let n; (n = readSync(fd, this.readBuf, 0, this.readBuf.length, null)) > 0; ) hash.update(this.readBuf.subarray(0, n));
        if (!this.oidMatches(i, hash.digest())) throw new TaskError(`${path.toString('latin1')} from the archive does not match its blob id`, 'integrity');
      }
      recordStat(this.table, i, fstatSync(fd, { bigint: true }));
    } finally {
      closeSync(fd);
    }
    this.ms.verify += now() - t;
    return true;
  }

  oidMatches(i: number, digest: Buffer): boolean {
    const oids = this.table.oids;
    return digest.equals(Buffer.from(oids.buffer, oids.byteOffset + i * 20, 20));
  }

  /** Editable clones: a whole file from the archive must hash to its blob id (converted files cannot). */
  verifyFromArchive(i: number, data: Uint8Array): void {
    if (!this.editable || (this.table.flags[i]! & FLAG_CONVERTED) !== 0) return;
    const t = now();
    if (!this.oidMatches(i, blobHash(data.length).update(data).digest()))
      throw new TaskError(`${this.fullPath(i).toString('latin1')} from the archive does not match its blob id`, 'integrity');
    this.ms.verify += now() - t;
  }
}

export function blobHash(size: number): Hasher {
  return createHasher('sha1').update(`blob ${size}\0`);
}
