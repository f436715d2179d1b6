/**
 * ArtifactStore on a local directory: root/<first 2 hex>/<digest>, read-only
 * files, plus root/tmp/ for writes in progress. An artifact appears under its
 * digest only by link(2) of a complete, verified, fsynced file, so a crash can
 * leave a stray tmp file but never a partial artifact, and link's create-only
 * semantics mean an existing artifact is never overwritten.
 */
import { createReadStream, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { chmod, copyFile, link, lstat, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { ArtifactInfo, ArtifactStore } from './artifact-store.js';
import { SnapError, integrityError, invalid } from '../util/errors.js';
import { isDigest, sha256Hex } from '../util/hash.js';

const HIGH_WATER_MARK = 1 << 20;
const READ_ONLY = 0o444;
/** A tmp file untouched this long is abandoned even if its pid is alive (pids get reused: PID 1 in containers). */
const STALE_TMP_MS = 60 * 60 * 1000;

export class LocalArtifactStore implements ArtifactStore {
  readonly rootDir: string;
  readonly #tmpDir: string;

  constructor(rootDir: string) {
    this.rootDir = rootDir;
    this.#tmpDir = join(rootDir, 'tmp');
    mkdirSync(this.#tmpDir, { recursive: true });
    this.#cleanStaleTmp();
  }

  async putFile(path: string, claimed?: string): Promise<ArtifactInfo> {
    if (claimed !== undefined) checkDigest(claimed);
    if (!(await lstat(path)).isFile()) throw invalid(`${path} is not a regular file`);
    // Stage into our tmp dir first: a rename when on the same filesystem, a
    // copy otherwise, so what we hash is the file we then link, at a path only we use.
    const tmp = this.#tmpPath();
    let moved = false;
    try {
      await rename(path, tmp);
      moved = true;
    } catch (err) {
      if (errno(err) !== 'EXDEV') throw err;
      await copyFile(path, tmp);
    }
    let size: number;
    let digest: string;
    try {
      ({ hex: digest, size } = await hashFile(tmp));
      if (claimed !== undefined && digest !== claimed) throw integrityError(`file ${path} hashes to ${digest}, not the claimed ${claimed}`);
      await this.#publish(tmp, digest, size);
    } catch (err) {
      // A refused or failed put leaves the caller's file where it was.
      if (moved) await rename(tmp, path).catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await unlink(tmp).catch(() => undefined); // already in place, or an identical artifact was
    if (!moved) await unlink(path);
    return { digest, size };
  }

  async putBytes(bytes: Uint8Array): Promise<ArtifactInfo> {
    const digest = sha256Hex(bytes);
    const existing = await this.stat(digest);
    if (existing) return existing;
    const tmp = this.#tmpPath();
    try {
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(bytes);
      } finally {
        await fh.close();
      }
      await this.#publish(tmp, digest, bytes.length);
      return { digest, size: bytes.length };
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  async stat(digest: string): Promise<ArtifactInfo | null> {
    checkDigest(digest);
    try {
      const st = await stat(this.localPath(digest));
      // A directory there (damage, or a hand-made mess) is not an artifact; say so before anyone sends headers.
      if (!st.isFile()) throw new SnapError('internal', `stored artifact ${digest} is not a regular file: the store is damaged`);
      return { digest, size: st.size };
    } catch (err) {
      if (errno(err) === 'ENOENT') return null;
      throw err;
    }
  }

  async open(digest: string, range?: { start: number; end: number }): Promise<Readable> {
    checkDigest(digest);
    if (range) checkRange(range);
    let fh: FileHandle;
    try {
      fh = await open(this.localPath(digest), 'r');
    } catch (err) {
      throw notFoundOr(err, digest);
    }
    try {
      if (!range) return fh.createReadStream({ highWaterMark: HIGH_WATER_MARK });
      // Check against the size of the file we opened, not a separate stat.
      const { size } = await fh.stat();
      if (range.start >= size) {
        throw invalid(`range ${range.start}-${range.end} is outside artifact ${digest} of ${size} bytes`);
      }
      const end = Math.min(range.end, size - 1);
      return fh.createReadStream({ start: range.start, end, highWaterMark: HIGH_WATER_MARK });
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  async read(digest: string): Promise<Buffer> {
    checkDigest(digest);
    try {
      return await readFile(this.localPath(digest));
    } catch (err) {
      throw notFoundOr(err, digest);
    }
  }

  localPath(digest: string): string {
    checkDigest(digest);
    return join(this.rootDir, digest.slice(0, 2), digest);
  }

  /** Link a complete tmp file into place under its digest; an existing artifact wins. */
  async #publish(tmp: string, digest: string, size: number): Promise<void> {
    await chmod(tmp, READ_ONLY);
    await fsync(tmp); // the data must be on disk before the name that promises it
    const dir = join(this.rootDir, digest.slice(0, 2));
    const dest = join(dir, digest);
    await mkdir(dir, { recursive: true });
    try {
      await link(tmp, dest);
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw err;
      // Same digest, so the same bytes; a different size means the store itself is damaged.
      const st = await stat(dest);
      if (st.size !== size) {
        throw integrityError(`stored artifact ${digest} has ${st.size} bytes, expected ${size}: store is damaged`);
      }
      return;
    }
    await fsync(dir); // make the new name itself survive power loss
  }

  #tmpPath(): string {
    return join(this.#tmpDir, `${process.pid}-${randomBytes(8).toString('hex')}`);
  }

  /**
   * Remove tmp files left by crashed writers: those whose owning process is gone,
   * and any untouched for an hour. Live writers in other processes (or other
   * stores on this root in this process) keep fresh files, which are spared.
   */
  #cleanStaleTmp(): void {
    const now = Date.now();
    for (const name of readdirSync(this.#tmpDir)) {
      const path = join(this.#tmpDir, name);
      try {
        const pid = Number(name.split('-', 1)[0]);
        const ownerGone = !Number.isSafeInteger(pid) || pid <= 0 || !processAlive(pid);
        if (ownerGone || now - statSync(path).mtimeMs > STALE_TMP_MS) rmSync(path, { force: true, recursive: true });
      } catch {
        // Raced with its owner finishing, or unreadable: leave it for next time.
      }
    }
  }
}

function checkDigest(digest: string): void {
  if (!isDigest(digest)) throw invalid(`not a sha256 digest: ${JSON.stringify(String(digest).slice(0, 80))}`);
}

function checkRange(range: { start: number; end: number }): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw invalid(`bad byte range ${start}-${end}`);
  }
}

async function hashFile(path: string): Promise<{ hex: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: HIGH_WATER_MARK }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { hex: hash.digest('hex'), size };
}

/** Flush a file's (or, for a directory, its entries') changes to disk. */
async function fsync(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errno(err) === 'EPERM'; // exists, owned by someone else
  }
}

function notFoundOr(err: unknown, digest: string): unknown {
  if (errno(err) === 'ENOENT') return new SnapError('not-found', `artifact ${digest} not found`, { cause: err });
  return err;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}
