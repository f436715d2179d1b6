/**
 * `snapclone clone`: resolve, download every artifact in parallel (verified),
 * and materialize a work tree (plus .git in editable mode) into a staging
 * directory inside the target (staging.ts), whose entries move up only when
 * complete. Any failure removes what the clone wrote: nothing is left behind,
 * and an existing empty target is left empty.
 *
 * The pipeline overlaps: HEAD packs and archive chunks are handed to the
 * writer threads as each one arrives, while later artifacts still download.
 */
import { closeSync, lstatSync, mkdirSync, openSync, readSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { createHash, type Hash } from 'node:crypto';
import { decompress } from 'zstd-napi';
import { ServerClient } from './http.js';
import { resolveRef, type NewerBuild, type Resolved } from './resolve.js';
import { checkDownloadsMatch } from './downloads.js';
import { WriterPool } from './pool.js';
import { shareTable, recordStat, STAT_FIELDS, type SharedTable } from './shared-table.js';
import { zeroMs, type WorkerResult, type WorkerTask } from './pool-types.js';
import { writeGitDir } from './gitdir.js';
import { Progress } from './progress.js';
import { inspectTarget, Staging } from './staging.js';
import { fsErrorToSnap } from './fs-errors.js';
import { STDIO_CLOSED, STDIO_CLOSED_EXIT } from './stdio-closed.js';
import { entriesPerChunk, INLINE_MAX_FILES, objectsByPack, splitObjects, threadsFor } from './plan.js';
import { manifestMode, modeServes, parseManifest, type Manifest, type ManifestMode, type PackRef } from '../clonepack/manifest.js';
import { decodeTableAndDirs, isConverted, MODE_GITLINK, MODE_SYMLINK, type TableEntry } from '../clonepack/filetable.js';
import { chunkStarts, chunksWithConverted, streamLength, streamOffsets } from '../clonepack/layout.js';
import { zstdSingleFrameSize } from '../clonepack/zstd-frame.js';
import { encodeIndex, type IndexEntry } from '../git/index-file.js';
import { Semaphore } from '../util/limit.js';
import { SnapError, integrityError } from '../util/errors.js';

export type CloneMode = 'editable' | 'files';

export interface CloneOptions {
  server: string;
  token?: string | undefined;
  name: string;
  dir: string;
  branch?: string | undefined;
  depth?: number | undefined;
  mode: CloneMode;
  progress?: Progress;
  waitTimeoutMs?: number;
  /** Where git's warnings go (an empty upstream, a HEAD naming a missing branch); default: stderr, as git prints them. */
  warn?: (message: string) => void;
  /** Where the line saying a newer commit is still building goes (printed even when quiet); default: stderr. */
  notice?: (line: string) => void;
  /** Every artifact through the server, never straight from the object store (--proxy). */
  proxy?: boolean;
}

export interface CloneResult {
  dir: string;
  repo: string;
  ref: string;
  commit: string | null;
  mode: CloneMode;
  shallow: boolean;
  files: number;
  bytesDownloaded: number;
  /** Peak resident set size of this process so far, in bytes. */
  peakRssBytes: number;
  /** Milliseconds since the clone started at which each step ended (steps overlap: downloads run throughout). */
  timings: Record<string, number>;
  /**
   * Time per phase in ms. resolve, download, index and rename are wall time;
   * verify, inflate and write add up the time of every thread that did them
   * (so with N writer threads they can exceed the wall time).
   */
  phases: { resolve: number; download: number; verify: number; inflate: number; write: number; index: number; rename: number };
  writerThreads: number;
  /** The server was still building a newer commit of the ref: the clone has the newest one built for its mode. */
  newer: NewerBuild | null;
  /** Artifacts (the manifest included) fetched straight from object-store URLs, and those whose URL failed and came from the server. */
  objectStore: { artifacts: number; fellBack: number };
  /**
   * Recovered faults: download attempts after a transport failure, those that
   * resumed with a byte range and the bytes they did not fetch again, answers
   * that started an artifact over, and 429 answers waited out.
   */
  retries: { attempts: number; resumed: number; resumedBytes: number; restarts: number; rateLimited: number };
}

const DOWNLOADS = Number(process.env.SNAPCLONE_DOWNLOADS) || 8;

export async function clone(opts: CloneOptions): Promise<CloneResult> {
  const t0 = performance.now();
  // Time the process spent starting up and loading modules before the clone began.
  const timings: Record<string, number> = { startup: Math.round(t0) };
  const mark = (k: string) => (timings[k] = Math.round(performance.now() - t0));
  const progress = opts.progress ?? new Progress(false);
  if (opts.depth !== undefined && opts.depth !== 1) throw new SnapError('usage', '--depth supports only 1');
  const shallow = opts.depth === 1;
  const want = wantedMode(opts.mode, shallow);
  const target = resolvePath(opts.dir);
  try {
    inspectTarget(target); // fail before asking the server; checked again when staging starts
  } catch (err) {
    throw fsErrorToSnap(err) ?? err;
  }

  const client = new ServerClient(opts.server, { token: opts.token, connections: DOWNLOADS, upstreamCredentials: true });
  const waitMs = opts.waitTimeoutMs ?? 30 * 60_000;
  client.deadline = Date.now() + waitMs;
  let staging: Staging | null = null;
  let interrupt: Interrupt | null = null;
  // Writer threads start once the manifest shows there is enough work for them.
  let pool: WriterPool | null = new WriterPool();
  let downloaded = 0;
  try {
    progress.phase('Resolving');
    const resolved = await resolveRef(client, opts.name, opts.branch ?? '', {
      mode: want,
      timeoutMs: waitMs,
      onWait: (line) => progress.status(line),
      proxy: opts.proxy === true,
    });
    mark('resolve');
    if (resolved.mode && !modeServes(resolved.mode, want)) throw lesserMode(resolved.mode, want);
    client.useDownloads(resolved.downloads);
    client.useSigned(resolved.signed?.query ?? null, resolved.signed?.expiresAt ?? null);
    const manifest = parseManifest((await client.download(resolved.manifest))!);
    checkManifestMatches(manifest, resolved, want);
    if (resolved.downloads) checkDownloadsMatch(resolved.downloads, resolved.manifest.digest, manifest);
    mark('manifest');
    // A big table means writer threads: boot one now, overlapping the table download.
    if (manifest.table.entries > INLINE_MAX_FILES || process.env.SNAPCLONE_WORKERS) pool.grow(1);

    staging = Staging.create(target);
    interrupt = onInterrupt(staging, () => pool?.close() ?? Promise.resolve());
    progress.note(`Cloning into '${opts.dir}'...`);
    const root = staging.root;
    const gitDir = join(root, '.git');
    const packDir = join(gitDir, 'objects', 'pack');
    if (opts.mode === 'editable') mkdirSync(packDir, { recursive: true });

    progress.phase('Receiving');
    const sem = new Semaphore(DOWNLOADS);
    const fetchBytes = (a: { digest: string; size: number }) =>
      sem.use(() => client.download(a, { onBytes: (n) => ((downloaded += n), progress.addBytes(n)) })) as Promise<Buffer>;
    const fetchFile = (a: { digest: string; size: number }, path: string) =>
      sem.use(() => client.download(a, { toFile: path, onBytes: (n) => ((downloaded += n), progress.addBytes(n)) }));

    // Where the work tree comes from. Files mode and full clones read the
    // archive: zstd frames hold the same bytes as the undeltified HEAD packs in
    // fewer bytes, and cost one decompression per 4 MiB instead of one inflate
    // per blob; a full clone's history packs already hold every object. A
    // depth-1 clone inflates the HEAD packs it needs for its object store anyway.
    const treeFromArchive = manifest.commit !== null && (opts.mode === 'files' || !shallow);
    const headPacks = opts.mode === 'editable' && shallow && manifest.commit ? manifest.headPacks : [];
    // Without a commit (HEAD names a missing branch) a full clone still gets every branch and tag.
    const historyPacks = opts.mode === 'editable' && !shallow ? manifest.historyPacks : [];
    progress.bytesTotal = manifest.table.size + sumPacks(headPacks) + sumPacks(historyPacks);
    if (treeFromArchive) progress.bytesTotal += manifest.archive.chunks.reduce((a, c) => a + c.size, 0);

    // Downloads in priority order: the table, then what the work tree waits on
    // (HEAD packs, or archive chunks once the table is in), then history packs.
    // Packs stream straight into .git/objects/pack.
    const tableFetch = fetchBytes(manifest.table);
    const packFetches = new Map<PackRef, Promise<void>>();
    for (const p of headPacks) packFetches.set(p, fetchPack(p, packDir, fetchFile));
    const headDone = Promise.allSettled([tableFetch, ...packFetches.values()]);
    for (const p of historyPacks) packFetches.set(p, headDone.then(() => fetchPack(p, packDir, fetchFile)));
    for (const f of packFetches.values()) f.catch(() => {}); // observed below; avoid unhandled rejections meanwhile

    // Archive chunks start downloading once the table has arrived, overlapping
    // its decoding; each waits for a memory slot.
    const chunkSlots = new Semaphore(8 + 4); // bounds compressed chunk bytes held in memory
    const chunkData = new Map<number, Promise<Buffer>>();
    const prefetch = (c: number) => {
      let p = chunkData.get(c);
      if (!p) {
        p = chunkSlots.acquire().then(() => fetchBytes(manifest.archive.chunks[c]!));
        p.catch(() => {});
        chunkData.set(c, p);
      }
      return p;
    };
    const tableZ = await tableFetch;
    if (treeFromArchive) manifest.archive.chunks.forEach((_, c) => prefetch(c));
    const { entries: table, dirs } = decodeTableArtifact(tableZ, manifest);
    checkArchiveCoversTable(manifest, table);
    mark('table');
    progress.filesTotal = table.filter((e) => e.mode !== MODE_GITLINK).length;

    const work = zeroMs();
    const mkdirStart = performance.now();
    makeDirectories(root, dirs);
    work.write += performance.now() - mkdirStart;
    mark('mkdir');
    const shared = shareTable(table);
    pool.grow(threadsFor(table));
    pool.start(Buffer.from(root + '/'), shared, opts.mode === 'editable');
    const partial = new Set<number>();
    const symlinkParts = new Map<number, { at: number; bytes: Uint8Array }[]>();
    const collect = (r: WorkerResult) => {
      work.inflate += r.ms.inflate;
      work.verify += r.ms.verify;
      work.write += r.ms.write;
      progress.addFiles(r.files);
      for (const i of r.partial) partial.add(i);
      for (const p of r.symlinkPieces) (symlinkParts.get(p.entry) ?? symlinkParts.set(p.entry, []).get(p.entry)!).push(p);
    };
    const tasks: Promise<void>[] = [];
    const offsets = streamOffsets(table);
    const starts = chunkStarts(manifest.archive.chunks);
    const runChunk = (c: number, entries: number[]) =>
      prefetch(c).then(async (data) => {
        const task: WorkerTask = {
          kind: 'chunk',
          id: c,
          data,
          chunkStart: starts[c]!,
          rawSize: manifest.archive.chunks[c]!.rawSize,
          entries: Uint32Array.from(entries),
          offsets: Float64Array.from(entries.map((i) => offsets[i]!)),
        };
        try {
          collect(await pool!.run(task, data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? [data.buffer as ArrayBuffer] : []));
        } finally {
          chunkSlots.release();
        }
      });

    if (treeFromArchive) {
      const perChunk = entriesPerChunk(manifest, table, offsets, null);
      manifest.archive.chunks.forEach((_, c) => tasks.push(runChunk(c, perChunk.get(c) ?? [])));
      const empties = table.map((e, i) => (e.mode !== MODE_GITLINK && e.size === 0 ? i : -1)).filter((i) => i >= 0);
      for (let k = 0; k < empties.length; k += 4096)
        tasks.push(pool.run({ kind: 'empty', id: -2 - k, entries: Uint32Array.from(empties.slice(k, k + 4096)) }).then(collect));
    } else if (manifest.commit) {
      // Depth 1: inflate blobs from the HEAD packs as each pack lands.
      const byPack = objectsByPack(table, headPacks.length);
      headPacks.forEach((p, k) =>
        tasks.push(
          packFetches.get(p)!.then(async () => {
            const path = join(packDir, `${p.name}.pack`);
            await Promise.all(splitObjects(byPack[k]!, table).map((objects, n) => pool!.run({ kind: 'pack', id: k * 1_000_000 + n, packPath: path, objects }).then(collect)));
          }),
        ),
      );
      // Converted files (.gitattributes transforms) come from the archive.
      const conv = table.map((e, i) => (isConverted(e) && e.size > 0 ? i : -1)).filter((i) => i >= 0);
      if (conv.length) {
        const perChunk = entriesPerChunk(manifest, table, offsets, new Set(conv));
        const needed = chunksWithConverted(manifest, table);
        progress.bytesTotal += needed.reduce((a, c) => a + manifest.archive.chunks[c]!.size, 0);
        for (const c of needed) tasks.push(runChunk(c, perChunk.get(c) ?? []));
      }
      const emptyConverted = table.map((e, i) => (isConverted(e) && e.size === 0 ? i : -1)).filter((i) => i >= 0);
      if (emptyConverted.length) tasks.push(pool.run({ kind: 'empty', id: -1, entries: Uint32Array.from(emptyConverted) }).then(collect));
    }
    for (const f of packFetches.values()) tasks.push(f);
    await Promise.all(tasks);
    mark('written');

    finishSpanningEntries(root, opts.mode === 'editable', shared, partial, symlinkParts, table);
    progress.addFiles(partial.size + symlinkParts.size); // entries that spanned chunks are complete only now
    const writerThreads = pool.size;
    await pool.close();
    pool = null;
    if (opts.mode === 'editable') {
      progress.phase('Writing index');
      for (let i = 0; i < table.length; i++) if (table[i]!.mode === MODE_GITLINK) recordStat(shared, i, lstatSync(entryFullPath(root, table[i]!), { bigint: true }));
      writeGitDir({ gitDir, manifest, upstreamUrl: resolved.upstream, shallow });
      // The work tree moves up first: a rename changes the ctime of what it moves,
      // so top-level entries are stat'ed again where they end up, for the index.
      staging.moveUp((name) => name !== '.git');
      for (let i = 0; i < table.length; i++)
        if (!table[i]!.path.includes(0x2f)) recordStat(shared, i, lstatSync(entryFullPath(staging.dir, table[i]!), { bigint: true }));
      if (manifest.commit) writeFileSync(join(gitDir, 'index'), encodeIndex(indexEntries(table, shared)));
      mark('index');
    }
    staging.moveUp();
    staging.finish();
    staging = null;
    interrupt.remove(); // complete: a signal from here on finds nothing to undo
    interrupt = null;
    mark('rename');
    const warning = cloneWarning(manifest, shallow);
    if (warning) {
      progress.clear();
      (opts.warn ?? ((w: string) => process.stderr.write(`warning: ${w}\n`)))(warning);
    }
    progress.done(`Cloned ${opts.name} (${resolved.ref} at ${manifest.commit?.slice(0, 12) ?? 'no commits'}) into ${opts.dir}`);
    if (resolved.newer) (opts.notice ?? ((l: string) => process.stderr.write(`${l}\n`)))(newerNotice(resolved.ref, manifest.commit, resolved.newer));
    return {
      dir: target,
      repo: resolved.repo,
      ref: resolved.ref,
      commit: manifest.commit,
      mode: opts.mode,
      shallow,
      files: progress.filesDone,
      bytesDownloaded: downloaded,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      timings: { ...timings, total: Math.round(performance.now() - t0) },
      phases: {
        resolve: timings.resolve!,
        download: Math.round(client.stats.lastByteAt - client.stats.firstByteAt),
        verify: Math.round(client.stats.verifyMs + work.verify),
        inflate: Math.round(work.inflate),
        write: Math.round(work.write),
        index: opts.mode === 'editable' ? timings.index! - timings.written! : 0,
        rename: timings.rename! - (timings.index ?? timings.written!),
      },
      writerThreads,
      newer: resolved.newer,
      objectStore: { artifacts: client.stats.direct, fellBack: client.stats.fallbacks },
      retries: {
        attempts: client.stats.retries,
        resumed: client.stats.resumes,
        resumedBytes: client.stats.resumedBytes,
        restarts: client.stats.restarts,
        rateLimited: client.stats.rateLimited,
      },
    };
  } catch (err) {
    // After a signal, the failure is a consequence of it (an abandoned write):
    // the handler is stopping the writers, removes the clone and exits.
    if (interrupt?.signalled) await new Promise<never>(() => {});
    progress.clear();
    const where = staging;
    throw fsErrorToSnap(err, (p) => where?.shown(p) ?? p) ?? err;
  } finally {
    // Writers stop before the rollback (else they recreate files in what it
    // deletes), and the signal handlers stay until the rollback is done.
    if (pool) await pool.close();
    await client.close();
    staging?.rollback();
    interrupt?.remove();
  }
}

/** Signals that end a clone; SIGHUP is a closed terminal or a dropped ssh session. */
const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;

interface Interrupt {
  /** A signal arrived: the clone is being undone and the process exits. */
  readonly signalled: boolean;
  /** Unhook the handlers (not while a signal's cleanup runs). */
  remove(): void;
}

/**
 * Ctrl-C, a kill or a hang-up must not leave a half-written clone: stop the
 * writer threads (they would go on creating files in what is being removed),
 * undo the clone, and exit as a signalled process would. Main-thread writes are
 * synchronous, so none runs while this does. Further signals during the cleanup
 * are ignored: they must not cut it short and leave what was written.
 */
function onInterrupt(staging: Staging, stopWriters: () => Promise<void>): Interrupt {
  let signalled = false;
  const undo = (exitCode: number, why: string) => {
    if (signalled) return;
    signalled = true;
    staging.interrupt(); // nothing more moves into the target
    void stopWriters()
      .catch(() => {}) // a thread that failed to stop is gone anyway; remove what is there
      .then(() => {
        staging.rollback();
        process.stderr.write(`\nsnapclone: ${why}; removed the partial clone\n`);
        process.exit(exitCode);
      });
  };
  const onSignal = (signal: NodeJS.Signals) => undo(128 + SIGNALS[signal as keyof typeof SIGNALS], 'interrupted');
  // stdout or stderr is a closed pipe (src/cli/main.ts): end as git does on SIGPIPE.
  const onClosed = () => undo(STDIO_CLOSED_EXIT, 'output closed');
  for (const s of Object.keys(SIGNALS)) process.on(s, onSignal);
  process.on(STDIO_CLOSED, onClosed);
  return {
    get signalled() {
      return signalled;
    },
    remove() {
      if (signalled) return;
      for (const s of Object.keys(SIGNALS)) process.off(s, onSignal);
      process.off(STDIO_CLOSED, onClosed);
    },
  };
}

/** The warning git clone prints for a clone with nothing to check out, if any. */
function cloneWarning(m: Manifest, shallow: boolean): string | null {
  if (m.commit !== null) return null;
  // git clone --depth 1 of a HEAD naming a missing branch fetches nothing, so it looks empty too.
  if (m.refs.length === 0 || shallow) return 'You appear to have cloned an empty repository.';
  return 'remote HEAD refers to nonexistent ref, unable to checkout';
}

/** The manifest mode a clone needs: files mode reads the whole archive, --depth 1 the HEAD packs, a full clone the history too. */
export function wantedMode(mode: CloneMode, shallow: boolean): ManifestMode {
  return mode === 'files' ? 'files' : shallow ? 'shallow' : 'full';
}

/** The line saying the clone is not of the newest commit (printed even with --quiet: the user may want to wait for it). */
export function newerNotice(ref: string, commit: string | null, newer: NewerBuild): string {
  const got = commit ? commit.slice(0, 12) : 'no commit';
  return `snapclone: cloned ${ref} at ${got}; the server is still building ${newer.commit ? newer.commit.slice(0, 12) : 'a newer commit'}`;
}

function lesserMode(have: ManifestMode, want: ManifestMode): SnapError {
  return integrityError(`the server sent a ${have} clonepack, which cannot serve a ${want} clone`);
}

function checkManifestMatches(m: Manifest, r: Resolved, want: ManifestMode): void {
  if (m.ref !== r.ref || m.commit !== r.commit || (r.mode !== undefined && manifestMode(m) !== r.mode))
    throw integrityError('manifest does not describe the ref the server resolved');
  if (!modeServes(manifestMode(m), want)) throw lesserMode(manifestMode(m), want);
}

/**
 * The archive holds the whole work-tree stream, except that a shallow manifest
 * may leave it empty when no file needs it (no converted entry: every blob
 * comes from the HEAD packs).
 */
function checkArchiveCoversTable(m: Manifest, table: TableEntry[]): void {
  if (m.archive.bytes === streamLength(table)) return;
  if (m.archive.bytes === 0 && manifestMode(m) === 'shallow') {
    if (table.some(isConverted)) throw integrityError('the shallow clonepack has no archive, but its file table has converted files that need one');
    return;
  }
  throw integrityError(`the archive holds ${m.archive.bytes} bytes, the file table ${streamLength(table)}`);
}

function sumPacks(ps: PackRef[]): number {
  return ps.reduce((a, p) => a + p.pack.size + p.idx.size, 0);
}

async function fetchPack(p: PackRef, packDir: string, fetchFile: (a: { digest: string; size: number }, path: string) => Promise<unknown>): Promise<void> {
  const packPath = join(packDir, `${p.name}.pack`);
  await Promise.all([fetchFile(p.pack, packPath), fetchFile(p.idx, join(packDir, `${p.name}.idx`))]);
  // git finds packs by name; the name must be the pack's own trailer checksum.
  const fd = openSync(packPath, 'r');
  try {
    const trailer = Buffer.alloc(20);
    if (p.pack.size < 32 || readSync(fd, trailer, 0, 20, p.pack.size - 20) !== 20 || trailer.toString('hex') !== p.name.slice(5))
      throw integrityError(`pack ${p.name} does not end with its own checksum`);
  } finally {
    closeSync(fd);
  }
}

function decodeTableArtifact(z: Buffer, m: Manifest): { entries: TableEntry[]; dirs: Buffer[] } {
  if (zstdSingleFrameSize(z) !== m.table.rawSize) throw integrityError('file table size does not match the manifest');
  let raw: Buffer;
  try {
    raw = decompress(z);
  } catch (err) {
    throw integrityError(`file table does not decompress: ${(err as Error).message}`);
  }
  if (raw.length !== m.table.rawSize) throw integrityError('file table size does not match the manifest');
  return decodeTableAndDirs(raw, m.table.entries, m.headPacks.length);
}

function entryFullPath(root: string, e: TableEntry): Buffer {
  return Buffer.concat([Buffer.from(root + '/'), e.path]);
}

/** Create every directory once, parents first (the list is in byte order, so a prefix comes first). */
function makeDirectories(root: string, dirs: Buffer[]): void {
  const prefix = Buffer.from(root + '/');
  for (const d of dirs) mkdirSync(Buffer.concat([prefix, d]));
}

/**
 * Finish entries that spanned archive chunks: stat files written in parts, make
 * symlinks whose targets came in pieces, and (editable) check both against
 * their blob ids, reading the files back in 1 MiB slices.
 */
function finishSpanningEntries(root: string, editable: boolean, t: SharedTable, partial: Set<number>, symlinkParts: Map<number, { at: number; bytes: Uint8Array }[]>, table: TableEntry[]): void {
  const check = (i: number, hash: Hash) => {
    if (editable && !isConverted(table[i]!) && !hash.digest().equals(table[i]!.oid))
      throw integrityError(`${table[i]!.path.toString('latin1')} from the archive does not match its blob id`);
  };
  for (const i of partial) {
    const path = entryFullPath(root, table[i]!);
    if (!editable) continue;
    const hash = createHash('sha1').update(`blob ${table[i]!.size}\0`);
    const fd = openSync(path, 'r');
    try {
      const slice = Buffer.allocUnsafe(1 << 20);
      for (let n; (n = readSync(fd, slice, 0, slice.length, null)) > 0; ) hash.update(slice.subarray(0, n));
    } finally {
      closeSync(fd);
    }
    check(i, hash);
    recordStat(t, i, lstatSync(path, { bigint: true }));
  }
  for (const [i, parts] of symlinkParts) {
    if (table[i]!.mode !== MODE_SYMLINK) throw integrityError('symlink pieces for a non-symlink');
    const target = Buffer.alloc(table[i]!.size);
    for (const p of parts) target.set(p.bytes, p.at);
    if (target.includes(0)) throw new SnapError('invalid', 'a symlink target contains a NUL byte');
    check(i, createHash('sha1').update(`blob ${target.length}\0`).update(target));
    const path = entryFullPath(root, table[i]!);
    symlinkSync(target, path);
    if (editable) recordStat(t, i, lstatSync(path, { bigint: true }));
  }
}

function indexEntries(table: TableEntry[], t: SharedTable): IndexEntry[] {
  return table.map((e, i) => {
    const o = i * STAT_FIELDS;
    const s = t.stats;
    return {
      path: e.path,
      mode: e.mode,
      oid: e.oid,
      stat: { ctimeSec: s[o]!, ctimeNsec: s[o + 1]!, mtimeSec: s[o + 2]!, mtimeNsec: s[o + 3]!, dev: s[o + 4]!, ino: s[o + 5]!, uid: s[o + 6]!, gid: s[o + 7]!, size: s[o + 8]! },
    };
  });
}
