/**
 * ArtifactStore on a local directory: root/<first 2 hex>/<digest>, read-only
 * files, plus root/tmp/ for writes in progress. An artifact appears under its
 * digest only by link(2) of a complete, verified, fsynced file, so a crash can
 * leave a stray tmp file but never a partial artifact, and link's create-only
 * semantics mean an existing artifact is never overwritten.
 *
 * A damaged copy (found by a reader that hashed it, or visibly wrong: not a
 * regular file, or a size other than a new put of the same digest has) moves
 * to root/quarantine/<digest>, with <digest>.json saying why and since when.
 * It then reads as absent; a put of that digest links fresh verified bytes in
 * its place, which ends the quarantine. A quarantine names the copy it found
 * damaged (its device, inode, size and mtime): a good copy put at the path since
 * is never moved away.
 */
import { constants as fsConstants, createReadStream, existsSync, mkdirSync, lstatSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { access, chmod, copyFile, link, lstat, mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { ArtifactInfo, ArtifactStore, QuarantinedArtifact, StoredCopy } from '../artifact-store.js';
import { checkDigest, checkRange } from '../artifact-store.js';
import { SnapError, integrityError, invalid } from '../../util/errors.js';
import { isDigest, sha256Hex } from '../../util/hash.js';
import { pidExists } from '../../util/process.js';
import { log } from '../../util/log.js';

const HIGH_WATER_MARK = 1 << 20;
const READ_ONLY = 0o444;
/** A tmp file untouched this long is abandoned even if its pid is alive (pids get reused: PID 1 in containers). */
const STALE_TMP_MS = 60 * 60 * 1000;

export class LocalArtifactStore implements ArtifactStore {
  readonly rootDir: string;
  readonly #tmpDir: string;
  readonly #quarantineDir: string;

  constructor(rootDir: string) {
    this.rootDir = rootDir;
    this.#tmpDir = join(rootDir, 'tmp');
    this.#quarantineDir = join(rootDir, 'quarantine');
    mkdirSync(this.#tmpDir, { recursive: true });
    this.#cleanStaleTmp();
    this.#finishInterruptedQuarantines();
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
    if (existing && existing.size === bytes.length) return existing;
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
    let st;
    try {
      st = await stat(this.localPath(digest));
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return null;
      throw err;
    }
    if (!st.isFile()) {
      await this.quarantine(digest, 'not a regular file', copyOf(st));
      return null;
    }
    return { digest, size: st.size };
  }

  async open(digest: string, range?: { start: number; end: number }): Promise<Readable> {
    checkDigest(digest);
    if (range) checkRange(range);
    const { fh, size } = await this.#openFile(digest);
    try {
      if (!range) return fh.createReadStream({ highWaterMark: HIGH_WATER_MARK });
      // Check against the size of the file we opened, not a separate stat.
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

  async openCopy(digest: string): Promise<{ stream: Readable; copy: StoredCopy }> {
    checkDigest(digest);
    const { fh, copy } = await this.#openFile(digest);
    return { stream: fh.createReadStream({ highWaterMark: HIGH_WATER_MARK }), copy };
  }

  async read(digest: string): Promise<Buffer> {
    checkDigest(digest);
    const { fh } = await this.#openFile(digest);
    try {
      return await fh.readFile();
    } finally {
      await fh.close();
    }
  }

  async quarantine(digest: string, reason: string, copy?: StoredCopy): Promise<boolean> {
    checkDigest(digest);
    const dest = this.#quarantinePath(digest);
    await mkdir(this.#quarantineDir, { recursive: true });
    // Move it out under a name of our own first: of two concurrent quarantines one wins, and the
    // other must not touch the winner's copy.
    const incoming = join(this.#quarantineDir, `${digest}.${process.pid}-${randomBytes(8).toString('hex')}`);
    try {
      await rename(this.localPath(digest), incoming);
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return false;
      throw err;
    }
    // The path names whatever was stored last: a put may have replaced the copy found damaged
    // (after the hash, before the rename). Moved away by mistake, it goes back, create-only.
    const moved = await lstat(incoming);
    if (copy !== undefined && moved.isFile() && copyOf(moved) !== copy) {
      await link(incoming, this.localPath(digest)).catch((err: unknown) => {
        if (errno(err) !== 'EEXIST') throw err; // EEXIST: put again meanwhile; that copy is as good
      });
      await unlink(incoming);
      log.warn(`artifact ${digest}: not quarantined, the copy found damaged was replaced meanwhile`);
      return false;
    }
    await rm(dest, { recursive: true, force: true }); // a copy quarantined before, restored since
    await rename(incoming, dest);
    const record: QuarantinedArtifact = { digest, reason: oneLine(reason), since: Date.now() };
    // The record only explains; without it (a crash here) the copy still counts as quarantined.
    await writeFile(`${dest}.json`, `${JSON.stringify(record)}\n`).catch(() => undefined);
    log.error(`artifact ${digest} quarantined: ${record.reason}`);
    return true;
  }

  /** The store's directory and its tmp dir (every put goes through it) are there and usable. */
  async ping(): Promise<void> {
    const mode = fsConstants.R_OK | fsConstants.W_OK | fsConstants.X_OK;
    await access(this.rootDir, mode);
    await access(this.#tmpDir, mode);
  }

  async listQuarantined(): Promise<QuarantinedArtifact[]> {
    let names: string[];
    try {
      names = await readdir(this.#quarantineDir);
    } catch (err) {
      if (errno(err) === 'ENOENT') return [];
      throw err;
    }
    const out: QuarantinedArtifact[] = [];
    for (const digest of names.filter(isDigest).sort()) {
      // A copy back under its digest (a rebuild's put, or an operator's restore) ends the quarantine.
      const restored = await stat(this.localPath(digest)).then((st) => st.isFile(), () => false);
      if (restored) continue;
      const dest = this.#quarantinePath(digest);
      let record: Partial<QuarantinedArtifact> = {};
      try {
        record = JSON.parse(await readFile(`${dest}.json`, 'utf8')) as Partial<QuarantinedArtifact>;
      } catch {
        // No record (crashed while writing it): the copy's own times stand in.
      }
      const since = typeof record.since === 'number' ? record.since : await lstat(dest).then((st) => st.ctimeMs, () => 0);
      out.push({ digest, reason: typeof record.reason === 'string' ? record.reason : 'unknown', since });
    }
    return out;
  }

  async *list(): AsyncIterable<ArtifactInfo> {
    for (const sub of (await readdir(this.rootDir)).sort()) {
      if (!FANOUT.test(sub)) continue; // tmp/, quarantine/
      let names: string[];
      try {
        names = await readdir(join(this.rootDir, sub));
      } catch (err) {
        if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') continue;
        throw err;
      }
      for (const name of names.sort()) {
        if (!isDigest(name) || !name.startsWith(sub)) continue;
        const st = await stat(join(this.rootDir, sub, name)).catch(() => null); // deleted meanwhile
        if (st?.isFile()) yield { digest: name, size: st.size };
      }
    }
  }

  async delete(digest: string): Promise<boolean> {
    checkDigest(digest);
    try {
      await unlink(this.localPath(digest)); // a reader with it open keeps its bytes
      return true;
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return false;
      throw err;
    }
  }

  localPath(digest: string): string {
    checkDigest(digest);
    return join(this.rootDir, digest.slice(0, 2), digest);
  }

  /**
   * Link a complete, verified tmp file into place under its digest. An existing
   * artifact wins, unless it is visibly damaged (quarantined, then replaced).
   */
  async #publish(tmp: string, digest: string, size: number): Promise<void> {
    await chmod(tmp, READ_ONLY);
    await fsync(tmp); // the data must be on disk before the name that promises it
    const dir = join(this.rootDir, digest.slice(0, 2));
    const dest = join(dir, digest);
    await mkdir(dir, { recursive: true });
    for (let attempt = 1; ; attempt++) {
      try {
        await link(tmp, dest);
        break;
      } catch (err) {
        if (errno(err) !== 'EEXIST') throw err;
      }
      // Same digest, so the same bytes, unless the stored copy is damaged.
      const damage = await visibleDamage(dest, size);
      if (damage === null) return this.#endQuarantine(digest);
      if (attempt > 2) throw integrityError(`stored artifact ${digest} is damaged (${damage === 'gone' ? 'it vanished' : damage.reason}) and could not be replaced`);
      if (damage !== 'gone') await this.quarantine(digest, damage.reason, damage.copy);
    }
    await fsync(dir); // make the new name itself survive power loss
    await this.#endQuarantine(digest);
  }

  /** Open an artifact's file, refusing anything but a regular file (a directory there is damage, not an artifact). */
  async #openFile(digest: string): Promise<{ fh: FileHandle; size: number; copy: StoredCopy }> {
    let fh: FileHandle;
    try {
      // O_NONBLOCK: a FIFO at the path must not hang the open; no effect on regular files.
      fh = await open(this.localPath(digest), fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    } catch (err) {
      throw missingOr(err, digest);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) {
        await this.quarantine(digest, 'not a regular file', copyOf(st));
        throw missing(digest);
      }
      return { fh, size: st.size, copy: copyOf(st) };
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  async #endQuarantine(digest: string): Promise<void> {
    const dest = this.#quarantinePath(digest);
    await rm(`${dest}.json`, { force: true });
    await rm(dest, { recursive: true, force: true });
  }

  #quarantinePath(digest: string): string {
    return join(this.#quarantineDir, digest);
  }

  #tmpPath(): string {
    return join(this.#tmpDir, `${process.pid}-${randomBytes(8).toString('hex')}`);
  }

  /**
   * A crash between quarantine's two renames leaves <digest>.<pid>-<rand>: not listed,
   * never cleaned, and the artifact reads missing without being reported damaged. Finish
   * such a quarantine (its owner is gone), unless it is moot: a copy stored again since,
   * or a newer quarantined copy.
   */
  #finishInterruptedQuarantines(): void {
    let names: string[];
    try {
      names = readdirSync(this.#quarantineDir);
    } catch {
      return; // none yet
    }
    for (const name of names) {
      const m = INCOMING.exec(name);
      if (!m) continue;
      const digest = m[1]!;
      const leftover = join(this.#quarantineDir, name);
      const dest = this.#quarantinePath(digest);
      try {
        // Its owner may be alive mid-quarantine (another store on this root); the two renames are
        // moments apart, so one renamed (ctime) a minute ago is abandoned even if its pid is reused.
        if (pidExists(Number(m[2])) && Date.now() - lstatSync(leftover).ctimeMs < 60_000) continue;
        if (existsSync(this.localPath(digest)) || existsSync(dest)) {
          rmSync(leftover, { recursive: true, force: true });
          continue;
        }
        renameSync(leftover, dest);
        const record: QuarantinedArtifact = { digest, reason: 'interrupted quarantine', since: Date.now() };
        writeFileSync(`${dest}.json`, `${JSON.stringify(record)}\n`);
        log.warn(`artifact ${digest}: finished a quarantine interrupted by a crash`);
      } catch (err) {
        log.warn(`could not finish the interrupted quarantine ${leftover}: ${(err as Error).message}`);
      }
    }
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
        const ownerGone = !Number.isSafeInteger(pid) || pid <= 0 || !pidExists(pid);
        if (ownerGone || now - statSync(path).mtimeMs > STALE_TMP_MS) rmSync(path, { force: true, recursive: true });
      } catch {
        // Raced with its owner finishing, or unreadable: leave it for next time.
      }
    }
  }
}

/**
 * Which file this is. Device and inode name it; size and mtime guard against an inode freed and
 * reused by a new copy (rename changes neither).
 */
function copyOf(st: { dev: number; ino: number; size: number; mtimeMs: number }): StoredCopy {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
}

const FANOUT = /^[0-9a-f]{2}$/;
const INCOMING = /^([0-9a-f]{64})\.(\d+)-[0-9a-f]+$/;



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

/** Why the file at an artifact's path cannot be the artifact of `size` bytes; null if it may be, 'gone' if it vanished meanwhile. */
async function visibleDamage(path: string, size: number): Promise<{ reason: string; copy: StoredCopy } | 'gone' | null> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    if (errno(err) === 'ENOENT') return 'gone';
    throw err;
  }
  if (!st.isFile()) return { reason: 'not a regular file', copy: copyOf(st) };
  if (st.size !== size) return { reason: `stored copy has ${st.size} bytes, the artifact has ${size}`, copy: copyOf(st) };
  return null;
}

function missing(digest: string, cause?: unknown): SnapError {
  return new SnapError('artifact-missing', `artifact ${digest} is not in the store`, { cause });
}

function missingOr(err: unknown, digest: string): unknown {
  if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return missing(digest, err);
  return err;
}

function oneLine(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, 500);
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}
