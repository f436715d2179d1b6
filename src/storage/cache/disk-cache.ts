/**
 * A bounded local disk cache in front of a remote ArtifactStore (S3): dir/<digest>
 * files, at most `maxBytes` of them, the least recently used evicted first, plus
 * dir/tmp/ for fills in progress. One process per directory.
 *
 * What the cache holds is verified: a whole read of a missing artifact streams
 * from the remote and is kept only if its bytes hash to the digest. A cached
 * file is trusted only while it is the very file that was verified (same inode,
 * size and mtime: any write through the filesystem changes one); files found at
 * start-up are hashed again on first use. A whole read from the cache hashes as
 * it streams and holds back its last chunk, so bit rot fails the read (and drops
 * the file) instead of passing for complete; read() falls back to the remote.
 *
 * Range reads of a missing artifact go straight to the remote. stat, openCopy,
 * quarantine and listQuarantined are the remote's: existence and damage are the
 * bucket's truth, shared by every server (a cached copy must not make an
 * artifact look stored that the bucket lacks). Quarantine drops the cached copy;
 * openCopy (an integrity check: a client reported bad bytes, or the scrubber)
 * makes the cached copy be hashed again before its next use, since range reads
 * from the cache are not hashed. Only while the bucket is unreachable does stat
 * answer from the cache, for copies that hash right.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { access, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { ArtifactInfo, ArtifactStore, QuarantinedArtifact, StoredCopy } from '../artifact-store.js';
import { checkDigest, checkRange } from '../artifact-store.js';
import { SnapError, integrityError, invalid } from '../../util/errors.js';
import { isDigest, sha256Hex } from '../../util/hash.js';
import { log } from '../../util/log.js';
import { pidExists } from '../../util/process.js';

const HIGH_WATER_MARK = 1 << 20;
/** A fill untouched this long is abandoned even if its pid is alive (pids get reused). */
const STALE_TMP_MS = 60 * 60 * 1000;

interface Entry {
  size: number;
  /** dev:ino:size:mtime of the file as verified (or as found at start-up). */
  file: string;
  verified: boolean;
}

export interface DiskCacheOptions {
  dir: string;
  maxBytes: number;
}

export class DiskCachedStore implements ArtifactStore {
  readonly remote: ArtifactStore;
  readonly dir: string;
  readonly maxBytes: number;
  readonly presign?: (digest: string, seconds: number) => Promise<string>;
  readonly #tmpDir: string;
  /** In least-recently-used-first order (a use moves an entry to the end). */
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;

  constructor(remote: ArtifactStore, opts: DiskCacheOptions) {
    this.remote = remote;
    this.dir = opts.dir;
    this.maxBytes = Math.max(0, opts.maxBytes);
    this.#tmpDir = join(opts.dir, 'tmp');
    if (remote.presign) this.presign = (digest, seconds) => remote.presign!(digest, seconds);
    mkdirSync(this.#tmpDir, { recursive: true });
    this.#load();
  }

  /** Bytes the cache holds now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether a copy of `digest` is cached (it may still be dropped as damaged on use). */
  has(digest: string): boolean {
    return this.#entries.has(digest);
  }

  async stat(digest: string): Promise<ArtifactInfo | null> {
    try {
      return await this.remote.stat(digest);
    } catch (err) {
      // The bucket down: what is cached (and hashes right) still serves; the rest stays unreachable.
      if (!(err instanceof SnapError && err.code === 'unreachable') || !isDigest(digest)) throw err;
      const fh = await this.#openCached(digest);
      if (!fh) throw err;
      await fh.close();
      return { digest, size: this.#entries.get(digest)!.size };
    }
  }

  openCopy(digest: string): Promise<{ stream: Readable; copy: StoredCopy }> {
    // A check of the stored copy: someone doubts the bytes, so the cached copy is hashed again too.
    const entry = this.#entries.get(digest);
    if (entry) entry.verified = false;
    return this.remote.openCopy(digest);
  }

  /** The bucket answers (its own ping), and the cache directory is there and writable. */
  async ping(): Promise<void> {
    await Promise.all([
      this.remote.ping ? this.remote.ping() : this.remote.stat('0'.repeat(64)),
      access(this.#tmpDir, constants.W_OK).catch((err: unknown) => {
        throw new SnapError('unreachable', `disk cache ${this.dir} is not usable: ${(err as Error).message}`, { cause: err });
      }),
    ]);
  }

  close(): void {
    this.remote.close?.();
  }

  listQuarantined(): Promise<QuarantinedArtifact[]> {
    return this.remote.listQuarantined();
  }

  /** The bucket's artifacts (the truth every server shares), not what happens to be cached. */
  list(): AsyncIterable<ArtifactInfo> {
    return this.remote.list();
  }

  /** Deleted from the bucket and evicted here, so this server never serves it from the cache after. */
  async delete(digest: string): Promise<boolean> {
    checkDigest(digest);
    await this.#drop(digest);
    const removed = await this.remote.delete(digest);
    await this.#drop(digest); // a fill that finished meanwhile
    return removed;
  }

  putFile(path: string, digest?: string): Promise<ArtifactInfo> {
    return this.remote.putFile(path, digest);
  }

  async putBytes(bytes: Uint8Array): Promise<ArtifactInfo> {
    const info = await this.remote.putBytes(bytes);
    // Small ones (manifests) are read back soon and often: keep a copy.
    await this.#keep(info.digest, bytes).catch((err: unknown) => log.warn(`disk cache: could not keep ${info.digest}: ${(err as Error).message}`));
    return info;
  }

  async quarantine(digest: string, reason: string, copy?: StoredCopy): Promise<boolean> {
    checkDigest(digest);
    await this.#drop(digest);
    return this.remote.quarantine(digest, reason, copy);
  }

  async read(digest: string): Promise<Buffer> {
    checkDigest(digest);
    const fh = await this.#openCached(digest);
    if (fh) {
      try {
        const bytes = await fh.readFile();
        if (sha256Hex(bytes) === digest) return bytes;
      } finally {
        await fh.close();
      }
      await this.#drop(digest, 'its bytes do not hash to its digest');
    }
    const bytes = await this.remote.read(digest);
    // Wrong bytes from the remote are the caller's to find (and quarantine); they are never cached.
    if (sha256Hex(bytes) === digest) {
      await this.#keep(digest, bytes).catch((err: unknown) => log.warn(`disk cache: could not keep ${digest}: ${(err as Error).message}`));
    }
    return bytes;
  }

  async open(digest: string, range?: { start: number; end: number }, opts: { keep?: boolean } = {}): Promise<Readable> {
    checkDigest(digest);
    if (range) checkRange(range);
    const fh = await this.#openCached(digest);
    if (fh) {
      const size = this.#entries.get(digest)?.size ?? (await fh.stat()).size;
      if (!range) {
        const verifying = this.#verifying(digest);
        const file = fh.createReadStream({ highWaterMark: HIGH_WATER_MARK });
        file.on('error', (err) => verifying.destroy(err));
        verifying.on('close', () => file.destroy());
        return file.pipe(verifying);
      }
      if (range.start >= size) {
        await fh.close();
        throw invalid(`range ${range.start}-${range.end} is outside artifact ${digest} of ${size} bytes`);
      }
      return fh.createReadStream({ start: range.start, end: Math.min(range.end, size - 1), highWaterMark: HIGH_WATER_MARK });
    }
    if (range) return this.remote.open(digest, range);
    const body = await this.remote.open(digest);
    if (opts.keep === false) return body;
    const fill = await this.#fill(digest);
    if (!fill) return body;
    body.on('error', (err) => fill.destroy(err));
    fill.on('close', () => body.destroy());
    return body.pipe(fill);
  }

  /** The cached file, if there is one still exactly as verified (or, found at start-up, verified now). */
  async #openCached(digest: string): Promise<FileHandle | null> {
    const entry = this.#entries.get(digest);
    if (!entry) return null;
    let fh: FileHandle;
    try {
      fh = await open(this.#path(digest), 'r');
    } catch {
      this.#forget(digest, entry);
      return null;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile() || fileId(st) !== entry.file) {
        await fh.close();
        await this.#drop(digest, 'it changed on disk since it was verified', entry);
        return null;
      }
      if (!entry.verified) {
        if ((await hashHandle(fh)) !== digest) {
          await fh.close();
          await this.#drop(digest, 'its bytes do not hash to its digest', entry);
          return null;
        }
        entry.verified = true;
      }
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    this.#entries.delete(digest); // most recently used now
    this.#entries.set(digest, entry);
    return fh;
  }

  /** A pass-through of a cached whole read that fails, and drops the copy, if its bytes are not the artifact. */
  #verifying(digest: string): Transform {
    const hash = createHash('sha256');
    let held: Buffer | null = null;
    const drop = (): Promise<void> => this.#drop(digest, 'its bytes do not hash to its digest');
    return new Transform({
      transform(chunk: Buffer, _enc, cb: TransformCallback) {
        hash.update(chunk);
        const out = held;
        held = chunk;
        cb(null, out ?? undefined);
      },
      flush(cb: TransformCallback) {
        if (hash.digest('hex') !== digest) {
          void drop().finally(() => cb(integrityError(`the disk cache's copy of ${digest} is damaged; read it again`)));
          return;
        }
        cb(null, held ?? undefined);
      },
    });
  }

  /** A pass-through of a remote whole read that keeps a verified copy; null if there is no room. */
  async #fill(digest: string): Promise<Transform | null> {
    if (this.maxBytes === 0) return null;
    let fh: FileHandle;
    const tmp = this.#tmpPath();
    try {
      fh = await open(tmp, 'wx', 0o600);
    } catch (err) {
      log.warn(`disk cache: cannot fill ${digest}: ${(err as Error).message}`);
      return null;
    }
    const hash = createHash('sha256');
    let size = 0;
    let writing = true; // false once too big to keep, or a write failed
    let closed = false;
    const discard = async (): Promise<void> => {
      writing = false;
      if (!closed) {
        closed = true;
        await fh.close().catch(() => undefined);
      }
      await unlink(tmp).catch(() => undefined);
    };
    const maxKeep = this.maxBytes;
    const commit = (): Promise<void> => this.#commit(digest, tmp, fh, size);
    return new Transform({
      transform(chunk: Buffer, _enc, cb: TransformCallback) {
        hash.update(chunk);
        size += chunk.length;
        if (!writing) return cb(null, chunk);
        if (size > maxKeep) {
          void discard().finally(() => cb(null, chunk));
          return;
        }
        fh.write(chunk).then(
          () => cb(null, chunk),
          (err: unknown) => {
            log.warn(`disk cache: write of ${digest} failed: ${(err as Error).message}`);
            void discard().finally(() => cb(null, chunk));
          },
        );
      },
      flush(cb: TransformCallback) {
        if (!writing || hash.digest('hex') !== digest) {
          void discard().finally(() => cb());
          return;
        }
        closed = true;
        commit().then(
          () => cb(),
          (err: unknown) => {
            log.warn(`disk cache: could not keep ${digest}: ${(err as Error).message}`);
            void unlink(tmp).catch(() => undefined).finally(() => cb());
          },
        );
      },
      destroy(err, cb) {
        // Cut short (the client went away) or failed: the partial copy goes.
        if (writing && !closed) void discard();
        cb(err);
      },
    });
  }

  /** Keep bytes already verified (a put, or a remote read()). */
  async #keep(digest: string, bytes: Uint8Array): Promise<void> {
    if (bytes.length > this.maxBytes || this.#entries.has(digest)) return;
    const tmp = this.#tmpPath();
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(bytes);
    } catch (err) {
      await fh.close();
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await this.#commit(digest, tmp, fh, bytes.length);
  }

  /** Close a complete, verified tmp file and move it into place; evict as needed. */
  async #commit(digest: string, tmp: string, fh: FileHandle, size: number): Promise<void> {
    try {
      await fh.chmod(0o444);
    } finally {
      await fh.close();
    }
    const path = this.#path(digest);
    await rename(tmp, path);
    const old = this.#entries.get(digest);
    if (old) this.#forget(digest, old);
    const st = statSync(path);
    this.#entries.set(digest, { size, file: fileId(st), verified: true });
    this.#bytes += size;
    await this.#evict();
  }

  async #evict(): Promise<void> {
    for (const [digest, entry] of this.#entries) {
      if (this.#bytes <= this.maxBytes) break;
      this.#forget(digest, entry);
      await unlink(this.#path(digest)).catch(() => undefined); // readers with it open keep reading
    }
  }

  /** Remove a cached copy (damaged, or quarantined). `entry`: only if it is still that one. */
  async #drop(digest: string, why?: string, entry?: Entry): Promise<void> {
    const current = this.#entries.get(digest);
    if (!current || (entry && current !== entry)) return;
    this.#forget(digest, current);
    if (why) log.warn(`disk cache: dropped its copy of ${digest}: ${why}`);
    await unlink(this.#path(digest)).catch(() => undefined);
  }

  #forget(digest: string, entry: Entry): void {
    if (this.#entries.get(digest) !== entry) return;
    this.#entries.delete(digest);
    this.#bytes -= entry.size;
  }

  /** Index what a previous run left, oldest first (unverified until used); remove stray tmp files. */
  #load(): void {
    for (const name of readdirSync(this.#tmpDir)) {
      const path = join(this.#tmpDir, name);
      const pid = Number(name.split('-', 1)[0]);
      try {
        const ownerGone = !Number.isSafeInteger(pid) || pid <= 0 || !pidExists(pid);
        if (ownerGone || Date.now() - statSync(path).mtimeMs > STALE_TMP_MS) rmSync(path, { force: true, recursive: true });
      } catch {
        // raced with its owner: next time
      }
    }
    const found: { digest: string; size: number; file: string; mtime: number }[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!isDigest(name)) continue;
      try {
        const st = statSync(join(this.dir, name));
        if (st.isFile()) found.push({ digest: name, size: st.size, file: fileId(st), mtime: st.mtimeMs });
        else rmSync(join(this.dir, name), { recursive: true, force: true });
      } catch {
        // vanished: nothing to index
      }
    }
    for (const f of found.sort((a, b) => a.mtime - b.mtime)) {
      this.#entries.set(f.digest, { size: f.size, file: f.file, verified: false });
      this.#bytes += f.size;
    }
    void this.#evict(); // a smaller limit than last run
  }

  #path(digest: string): string {
    return join(this.dir, digest);
  }

  #tmpPath(): string {
    return join(this.#tmpDir, `${process.pid}-${randomBytes(8).toString('hex')}`);
  }
}

function fileId(st: { dev: number; ino: number; size: number; mtimeMs: number }): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
}

async function hashHandle(fh: FileHandle): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fh.createReadStream({ start: 0, autoClose: false, highWaterMark: HIGH_WATER_MARK }) as AsyncIterable<Buffer>) hash.update(chunk);
  return hash.digest('hex');
}


