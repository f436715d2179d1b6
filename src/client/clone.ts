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
import { closeSync, lstatSync, mkdirSync, openSync, readSync, writeFileSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { ServerClient } from './http.js';
import type { FirstAnswer } from './first-answer.js';
import { checkInlineArtifact, peekResolve, resolveRef, type NewerBuild, type Resolved } from './resolve.js';
import { checkDownloadsMatch } from './downloads.js';
import { DownloadSlots } from './download-slots.js';
import { WriterPool } from './pool.js';
import { shareTable, recordStat, setParts, type SharedTable } from './shared-table.js';
import { zeroMs, type PhaseMs, type WorkerResult, type WorkerTask } from './pool-types.js';
import { writeGitDir } from './gitdir.js';
import { Progress } from './progress.js';
import { writeErr } from './stdio.js';
import { inspectTarget, Staging } from './staging.js';
import { fsErrorToSnap } from './fs-errors.js';
import { onInterrupt, type Interrupt } from './interrupt.js';
import { entryFullPath, finishSymlinkPieces, type SymlinkParts } from './finish.js';
import { encodeIndexColumns } from '../git/index-file.js';
import { archiveIsWhole, depth1FromArchive, entriesPerChunk, objectsByPack, splitObjects, threadsFor, threadsForManifest, treeSources, type TreeSources } from './plan.js';
import { manifestMode, modeServes, parseManifest, type Manifest, type ManifestMode, type PackRef } from '../clonepack/manifest.js';
import { decodeTableAndDirs, isConverted, MODE_GITLINK, type TableEntry } from '../clonepack/filetable.js';
import { chunkStarts, chunksWithConverted, streamLength, streamOffsets } from '../clonepack/layout.js';
import { zstdSingleFrameSize } from '../clonepack/zstd-frame.js';
import { loadZstd, type Decompress } from './zstd.js';
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
  /** Resolve, already sent by the CLI (src/cli/first-request.ts): its answer is the first resolve's. */
  firstAnswer?: FirstAnswer;
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
/** Compressed archive chunks held in memory at once (downloaded or being written). */
const CHUNKS_IN_MEMORY = 8 + 4;

/** What one clone carries from phase to phase. */
interface Run {
  opts: CloneOptions;
  shallow: boolean;
  want: ManifestMode;
  target: string;
  t0: number;
  timings: Record<string, number>;
  progress: Progress;
  client: ServerClient;
  waitMs: number;
  /** Thread time of the writers, per kind of work. */
  work: PhaseMs;
  downloaded: number;
  staging: Staging | null;
  interrupt: Interrupt | null;
  pool: WriterPool | null;
}

/** The resolve answer and the manifest it names, checked against each other. */
interface Resolution {
  resolved: Resolved;
  manifest: Manifest;
  /** The file table's bytes if the resolve answer carried them (verified). */
  inlineTable: Buffer | null;
}

/** Downloads under way, in priority order; each artifact verified as it streams. */
interface Fetches {
  table: Promise<Buffer>;
  packs: Map<PackRef, Promise<void>>;
  /** Start (once) and get archive chunk `c`; holds a memory slot until releaseChunk(). */
  chunk(c: number): Promise<Buffer>;
  releaseChunk(): void;
}

/** Symlinks the writers could not make alone: their targets span chunks. */
interface Spanning {
  symlinkParts: SymlinkParts;
}

export async function clone(opts: CloneOptions): Promise<CloneResult> {
  const run = startRun(opts);
  try {
    const { resolved, manifest, inlineTable } = await resolvePhase(run);
    const staging = stagePhase(run);
    const sources = treeSources(manifest, opts.mode, run.shallow);
    const gitDir = join(staging.root, '.git');
    const packDir = join(gitDir, 'objects', 'pack');
    if (opts.mode === 'editable') mkdirSync(packDir, { recursive: true });
    run.progress.phase('Receiving');
    run.progress.bytesTotal = bytesToFetch(manifest, sources);
    const fetches = startFetches(run, manifest, sources, packDir, inlineTable);
    const { table, dirs } = await tablePhase(run, manifest, fetches);
    const mkdirStart = performance.now();
    makeDirectories(staging.root, dirs);
    run.work.write += performance.now() - mkdirStart;
    mark(run, 'mkdir');
    const shared = shareTable(table);
    const spanning = await writeTreePhase(run, manifest, sources, table, shared, fetches, packDir);
    mark(run, 'written');
    finishSymlinkPieces(staging.root, opts.mode === 'editable', shared, spanning.symlinkParts, table);
    run.progress.addFiles(spanning.symlinkParts.size); // symlinks that spanned chunks are complete only now
    const writerThreads = run.pool!.size;
    // Every task is done and the threads are idle: they stop in the background
    // (waiting for that cost git/git's clones 8-13 ms); nothing of theirs is left to undo.
    run.pool!.close().catch(() => {});
    run.pool = null;
    if (opts.mode === 'editable') gitDirPhase(run, manifest, resolved, table, shared, gitDir);
    publishPhase(run);
    tellUser(run, manifest, resolved);
    return cloneResult(run, manifest, resolved, writerThreads);
  } catch (err) {
    // After a signal, the failure is a consequence of it (an abandoned write):
    // the handler is stopping the writers, removes the clone and exits.
    if (run.interrupt?.signalled) await new Promise<never>(() => {});
    run.progress.clear();
    const where = run.staging;
    throw fsErrorToSnap(err, (p) => where?.shown(p) ?? p) ?? err;
  } finally {
    // Writers stop before the rollback (else they recreate files in what it
    // deletes), and the signal handlers stay until the rollback is done.
    if (run.pool) await run.pool.close();
    await run.client.close();
    run.staging?.rollback();
    run.interrupt?.remove();
  }
}

function mark(run: Run, step: string): void {
  run.timings[step] = Math.round(performance.now() - run.t0);
}

/** Check the arguments and the target before asking the server anything. */
function startRun(opts: CloneOptions): Run {
  const t0 = performance.now();
  if (opts.depth !== undefined && opts.depth !== 1) throw new SnapError('usage', '--depth supports only 1');
  const shallow = opts.depth === 1;
  const target = resolvePath(opts.dir);
  try {
    inspectTarget(target); // fail before asking the server; checked again when staging starts
  } catch (err) {
    throw fsErrorToSnap(err) ?? err;
  }
  const client = new ServerClient(opts.server, { token: opts.token, connections: DOWNLOADS, upstreamCredentials: true });
  const waitMs = opts.waitTimeoutMs ?? 30 * 60_000;
  client.deadline = Date.now() + waitMs;
  client.answerFirst(opts.firstAnswer ?? null);
  return {
    opts,
    shallow,
    want: wantedMode(opts.mode, shallow),
    target,
    t0,
    // Time the process spent starting up and loading modules before the clone began.
    timings: { startup: Math.round(t0) },
    progress: opts.progress ?? new Progress(false),
    client,
    waitMs,
    work: zeroMs(),
    downloaded: 0,
    staging: null,
    interrupt: null,
    // Writer threads start once the manifest shows there is enough work for them.
    pool: new WriterPool(),
  };
}

/** Resolve the ref, then get the manifest (inline in the answer, or one download) and check it names what was resolved. */
async function resolvePhase(run: Run): Promise<Resolution> {
  const { client, opts, progress } = run;
  progress.phase('Resolving');
  const resolved = await resolveRef(client, opts.name, opts.branch ?? '', {
    mode: run.want,
    timeoutMs: run.waitMs,
    onWait: (line) => progress.status(line),
    proxy: opts.proxy === true,
  });
  mark(run, 'resolve');
  if (resolved.mode && !modeServes(resolved.mode, run.want)) throw lesserMode(resolved.mode, run.want);
  const first = { resolved, manifest: await manifestOf(run, resolved) };
  const files =
    run.shallow && opts.mode === 'editable' && first.manifest.commit && depth1FromArchive(first.manifest) && !archiveIsWhole(first.manifest)
      ? await filesManifestAtSameCommit(run, first)
      : null;
  const t = first.resolved.inline?.table ?? null;
  const r = files ?? { ...first, inlineTable: t ? checkInlineArtifact(t, first.manifest.table) : null };
  mark(run, 'manifest');
  // A big tree means writer threads: boot them now, overlapping the table download.
  run.pool!.grow(threadsForManifest(r.manifest));
  return r;
}

/** The manifest a resolve answer names (inline, or one download), checked against the answer. */
async function manifestOf(run: Run, resolved: Resolved): Promise<Manifest> {
  const { client } = run;
  client.useDownloads(resolved.downloads);
  client.useSigned(resolved.signed?.query ?? null, resolved.signed?.expiresAt ?? null);
  // resolve.ts checked inline manifest bytes against the digest and size it names.
  const manifest = parseManifest(resolved.inline?.manifest ?? (await client.download(resolved.manifest))!);
  checkManifestMatches(manifest, resolved, run.want);
  if (resolved.downloads) checkDownloadsMatch(resolved.downloads, resolved.manifest.digest, manifest);
  return manifest;
}

/**
 * Depth 1 from the archive: the files manifest of the same commit (it names the
 * HEAD packs too). An optional lookup: null (keep the shallow manifest, which
 * names all a depth-1 clone needs) when that commit's files stage is not
 * published, or anything about the lookup fails (a failed files build, a 429,
 * a broken or garbled answer), rather than an older commit or a failed clone.
 */
async function filesManifestAtSameCommit(run: Run, shallow: { resolved: Resolved; manifest: Manifest }): Promise<Resolution | null> {
  const { client, opts } = run;
  try {
    // peek: no 429 wait, no job followed, no build started (resolve.ts).
    const resolved = await peekResolve(client, opts.name, opts.branch ?? '', { mode: 'files', proxy: opts.proxy === true });
    // Only a files manifest (servers that predate modes send none) of the very commit and ref.
    if (resolved && resolved.mode === 'files' && resolved.commit === shallow.manifest.commit && resolved.ref === shallow.manifest.ref) {
      const manifest = await manifestOf(run, resolved);
      const t = resolved.inline?.table ?? null;
      if (manifestMode(manifest) === 'files') return { resolved, manifest, inlineTable: t ? checkInlineArtifact(t, manifest.table) : null };
    }
  } catch {
    // Nothing of this answer is used: the clone goes on from the shallow manifest.
  }
  // manifestOf may have switched them before a check failed.
  client.useDownloads(shallow.resolved.downloads);
  client.useSigned(shallow.resolved.signed?.query ?? null, shallow.resolved.signed?.expiresAt ?? null);
  return null;
}

/** The staging directory inside the target, and the handlers that undo it on a signal. */
function stagePhase(run: Run): Staging {
  const staging = Staging.create(run.target);
  run.staging = staging;
  run.interrupt = onInterrupt(staging, () => run.pool?.close() ?? Promise.resolve());
  run.progress.note(`Cloning into '${run.opts.dir}'...`);
  return staging;
}

function bytesToFetch(m: Manifest, s: TreeSources): number {
  let n = m.table.size + sumPacks(s.headPacks) + sumPacks(s.historyPacks);
  if (s.treeFromArchive) n += m.archive.chunks.reduce((a, c) => a + c.size, 0);
  return n;
}

/**
 * Downloads in priority order: the table, then what the work tree waits on
 * (HEAD packs, or archive chunks: both start with it), then history packs.
 * Packs stream straight into .git/objects/pack; chunks wait for a memory slot.
 */
function startFetches(run: Run, manifest: Manifest, sources: TreeSources, packDir: string, inlineTable: Buffer | null): Fetches {
  const slots = new DownloadSlots(DOWNLOADS);
  const onBytes = (n: number) => ((run.downloaded += n), run.progress.addBytes(n));
  const fetchBytes = (a: { digest: string; size: number }) => slots.use(true, () => run.client.download(a, { onBytes })) as Promise<Buffer>;
  // Packs the tree is not written from yield their slots to what it is written from.
  const fetchFile = (urgent: boolean) => (a: { digest: string; size: number }, path: string) => slots.use(urgent, () => run.client.download(a, { toFile: path, onBytes }));

  const table = inlineTable ? Promise.resolve(inlineTable) : fetchBytes(manifest.table);
  const packs = new Map<PackRef, Promise<void>>();
  for (const p of sources.headPacks) packs.set(p, fetchPack(p, packDir, fetchFile(!sources.treeFromArchive)));
  const headDone = Promise.allSettled([table, ...packs.values()]);
  // History packs are a full clone's longest download: they keep their turn.
  for (const p of sources.historyPacks) packs.set(p, headDone.then(() => fetchPack(p, packDir, fetchFile(true))));
  for (const f of packs.values()) f.catch(() => {}); // observed by the write phase; avoid unhandled rejections meanwhile

  const memory = new Semaphore(CHUNKS_IN_MEMORY);
  const chunks = new Map<number, Promise<Buffer>>();
  const fetches: Fetches = {
    table,
    packs,
    chunk(c) {
      let p = chunks.get(c);
      if (!p) {
        p = memory.acquire().then(() => fetchBytes(manifest.archive.chunks[c]!));
        p.catch(() => {});
        chunks.set(c, p);
      }
      return p;
    },
    releaseChunk: () => memory.release(),
  };
  // The chunks need no table to download: they come in while it downloads and decodes (git/git: 15-25 ms).
  if (sources.treeFromArchive) manifest.archive.chunks.forEach((_, c) => void fetches.chunk(c));
  return fetches;
}

/** Wait for the table, decode and check it. */
async function tablePhase(run: Run, manifest: Manifest, fetches: Fetches): Promise<{ table: TableEntry[]; dirs: Buffer[] }> {
  const tableZ = await fetches.table;
  mark(run, 'table-bytes');
  const decoded = decodeTableArtifact(tableZ, manifest, await loadZstd());
  checkArchiveCoversTable(manifest, decoded.entries);
  mark(run, 'table');
  run.progress.filesTotal = decoded.entries.filter((e) => e.mode !== MODE_GITLINK).length;
  return { table: decoded.entries, dirs: decoded.dirs };
}

/** Hand every piece of the work tree to the writers as its bytes arrive; resolves once all are written and every pack is in. */
async function writeTreePhase(run: Run, manifest: Manifest, sources: TreeSources, table: TableEntry[], shared: SharedTable, fetches: Fetches, packDir: string): Promise<Spanning> {
  const pool = run.pool!;
  pool.grow(threadsFor(table));
  pool.start(Buffer.from(run.staging!.root + '/'), shared, run.opts.mode === 'editable');
  const spanning: Spanning = { symlinkParts: new Map() };
  const collect = (r: WorkerResult) => {
    run.work.inflate += r.ms.inflate;
    run.work.verify += r.ms.verify;
    run.work.write += r.ms.write;
    run.progress.addFiles(r.files);
    for (const p of r.symlinkPieces) (spanning.symlinkParts.get(p.entry) ?? spanning.symlinkParts.set(p.entry, []).get(p.entry)!).push(p);
  };
  const offsets = streamOffsets(table);
  const starts = chunkStarts(manifest.archive.chunks);
  const runChunk = (c: number, entries: number[]) =>
    fetches.chunk(c).then(async (data) => {
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
        collect(await pool.run(task, data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? [data.buffer as ArrayBuffer] : []));
      } finally {
        fetches.releaseChunk();
      }
    });
  const emptyTasks = (entries: number[], id: (k: number) => number) => {
    const out: Promise<void>[] = [];
    for (let k = 0; k < entries.length; k += 4096) out.push(pool.run({ kind: 'empty', id: id(k), entries: Uint32Array.from(entries.slice(k, k + 4096)) }).then(collect));
    return out;
  };

  const tasks: Promise<void>[] = [];
  if (sources.treeFromArchive) {
    const perChunk = entriesPerChunk(manifest, table, offsets, null);
    setParts(shared, perChunk); // before any chunk task goes out
    manifest.archive.chunks.forEach((_, c) => tasks.push(runChunk(c, perChunk.get(c) ?? [])));
    tasks.push(...emptyTasks(indexesWhere(table, (e) => e.mode !== MODE_GITLINK && e.size === 0), (k) => -2 - k));
  } else if (manifest.commit) {
    // Depth 1: inflate blobs from the HEAD packs as each pack lands.
    const byPack = objectsByPack(table, sources.headPacks.length);
    sources.headPacks.forEach((p, k) =>
      tasks.push(
        fetches.packs.get(p)!.then(async () => {
          const path = join(packDir, `${p.name}.pack`);
          await Promise.all(splitObjects(byPack[k]!, table).map((objects, n) => pool.run({ kind: 'pack', id: k * 1_000_000 + n, packPath: path, objects }).then(collect)));
        }),
      ),
    );
    // Converted files (.gitattributes transforms) come from the archive.
    const conv = indexesWhere(table, (e) => isConverted(e) && e.size > 0);
    if (conv.length) {
      const perChunk = entriesPerChunk(manifest, table, offsets, new Set(conv));
      setParts(shared, perChunk);
      const needed = chunksWithConverted(manifest, table);
      run.progress.bytesTotal += needed.reduce((a, c) => a + manifest.archive.chunks[c]!.size, 0);
      for (const c of needed) tasks.push(runChunk(c, perChunk.get(c) ?? []));
    }
    tasks.push(...emptyTasks(indexesWhere(table, (e) => isConverted(e) && e.size === 0), () => -1));
  }
  for (const f of fetches.packs.values()) tasks.push(f);
  await Promise.all(tasks);
  return spanning;
}

function indexesWhere(table: TableEntry[], keep: (e: TableEntry) => boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < table.length; i++) if (keep(table[i]!)) out.push(i);
  return out;
}

/** Editable clones: refs, config and the rest of .git, the work tree moved up, then .git/index from the table and final stat data. */
function gitDirPhase(run: Run, manifest: Manifest, resolved: Resolved, table: TableEntry[], shared: SharedTable, gitDir: string): void {
  const staging = run.staging!;
  run.progress.phase('Writing index');
  for (let i = 0; i < table.length; i++) if (table[i]!.mode === MODE_GITLINK) recordStat(shared, i, lstatSync(entryFullPath(staging.root, table[i]!), { bigint: true }));
  writeGitDir({ gitDir, manifest, upstreamUrl: resolved.upstream, shallow: run.shallow });
  // The work tree moves up first: a rename changes the ctime of what it moves,
  // so top-level entries are stat'ed again where they end up, for the index.
  staging.moveUp((name) => name !== '.git');
  for (let i = 0; i < table.length; i++) if (!table[i]!.path.includes(0x2f)) recordStat(shared, i, lstatSync(entryFullPath(staging.dir, table[i]!), { bigint: true }));
  // The shared table's columns and the stat data the writers recorded are .git/index's entries.
  if (manifest.commit) writeFileSync(join(gitDir, 'index'), encodeIndexColumns(shared));
  mark(run, 'index');
}

/** Move what is left (.git) up into the target; from here on nothing is undone. */
function publishPhase(run: Run): void {
  run.staging!.moveUp();
  run.staging!.finish();
  run.staging = null;
  run.interrupt!.remove(); // complete: a signal from here on finds nothing to undo
  run.interrupt = null;
  mark(run, 'rename');
}

function tellUser(run: Run, manifest: Manifest, resolved: Resolved): void {
  const { opts, progress } = run;
  const warning = cloneWarning(manifest, run.shallow);
  if (warning) {
    progress.clear();
    (opts.warn ?? ((w: string) => writeErr(`warning: ${w}\n`)))(warning);
  }
  progress.done(`Cloned ${opts.name} (${resolved.ref} at ${manifest.commit?.slice(0, 12) ?? 'no commits'}) into ${opts.dir}`);
  if (resolved.newer) (opts.notice ?? ((l: string) => writeErr(`${l}\n`)))(newerNotice(resolved.ref, manifest.commit, resolved.newer));
}

function cloneResult(run: Run, manifest: Manifest, resolved: Resolved, writerThreads: number): CloneResult {
  const { timings, client, work } = run;
  const editable = run.opts.mode === 'editable';
  return {
    dir: run.target,
    repo: resolved.repo,
    ref: resolved.ref,
    commit: manifest.commit,
    mode: run.opts.mode,
    shallow: run.shallow,
    files: run.progress.filesDone,
    bytesDownloaded: run.downloaded,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    timings: { ...timings, total: Math.round(performance.now() - run.t0) },
    phases: {
      resolve: timings.resolve!,
      download: Math.round(client.stats.lastByteAt - client.stats.firstByteAt),
      verify: Math.round(client.stats.verifyMs + work.verify),
      inflate: Math.round(work.inflate),
      write: Math.round(work.write),
      index: editable ? timings.index! - timings.written! : 0,
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

function decodeTableArtifact(z: Buffer, m: Manifest, decompress: Decompress): { entries: TableEntry[]; dirs: Buffer[] } {
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

/** Create every directory once, parents first (the list is in byte order, so a prefix comes first). */
function makeDirectories(root: string, dirs: Buffer[]): void {
  const prefix = Buffer.from(root + '/');
  for (const d of dirs) mkdirSync(Buffer.concat([prefix, d]));
}

