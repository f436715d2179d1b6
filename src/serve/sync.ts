/**
 * A sync job: ask the upstream what it has, fetch it into the mirror, stamp the
 * ordering seq, then build what is new and publish it in steps (two-phase
 * publish), each durable before it is visible:
 *
 *  1. per target commit without a complete commit build: its shallow stage (HEAD
 *     packs, table), then the shallow records of every target at that commit;
 *  2. its files stage (the archive), then the files records;
 *  3. the history levels for every mirror tip, the refs snapshot (only when the
 *     refs or levels changed), then the full records.
 *
 * A record is replaced only by one with a larger seq, so a slow older sync never
 * hides a newer one. Fetch, refs read and seq are one step per repository (an
 * in-process lock), so a larger seq always carries an equal or newer mirror state.
 * Manifests are not written here: serve/compose.ts composes them from the records
 * when a resolve first asks. A sync with nothing new writes no artifact, no
 * snapshot and no record.
 *
 * Targets: the job's ref, or (a plain sync) the default branch and every ref
 * built before. A built ref the upstream deleted stops being served (its records go,
 * with a tombstone at this sync's seq; its artifacts stay for older manifests), as
 * a webhook's branch delete does.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { lsRemote, upstreamBounds } from '../builder/upstream.js';
import { ensureMirror, fetchMirror, setMirrorHead, snapshotRefs } from '../builder/mirror.js';
import { buildCommit, buildTagPack, chunkReuseKey, followedTags, type CommitBuild, type CommitBuildStats, type ReuseIndex } from '../builder/commit-build.js';
import { updateLevels } from '../builder/levels.js';
import { bootstrapMirror } from '../builder/bootstrap.js';
import { canonicalJson, type ChunkRef, type PackRef, type RefEntry } from '../clonepack/manifest.js';
import { maybeRepackMirror, mirrorMaxPacks } from '../builder/mirror-repack.js';
import { storedWithSize, type ArtifactStore } from '../storage/artifact-store.js';
import type { JobRecord, LeaseFence, MetadataStore, RefMode, RepoRecord } from '../metadata/metadata-store.js';
import { SnapError } from '../util/errors.js';
import { sha256Hex } from '../util/hash.js';
import { log } from '../util/log.js';
import { redactUrl } from '../util/redact.js';
import { pidExists } from '../util/process.js';
import { shallowRefs } from './compose.js';
import { sameTips } from './mirror-refs.js';
import { runGit } from '../builder/gitproc.js';
import { diskFullError } from '../builder/disk-full.js';
import { getCommitBuild, getLevels, latestSnapshot, putCommitBuild, recentCommitBuilds, viewOf, type RefView, type SnapshotData } from './records.js';

export interface SyncOptions {
  /** Largest history pack before a level is split (default: the build's, 512 MiB). */
  historyPackMaxBytes: number;
  /** How many recent commit builds a new one may reuse blob groups and archive chunks from. */
  reuseBuilds: number;
  /** Test hook: awaited before each publish step ('shallow', 'files', 'history'); a gate in the build. */
  beforeStep?: (step: 'shallow' | 'files' | 'history', repo: string) => Promise<void>;
  /** Build a missing mirror from the store's history levels (default: unless $SNAPCLONE_MIRROR_BOOTSTRAP is 0). */
  bootstrapMirror: boolean;
}

const DEFAULTS: Omit<SyncOptions, 'bootstrapMirror'> = { historyPackMaxBytes: 512 << 20, reuseBuilds: 8 };

interface Target {
  ref: string;
  commit: string | null;
}

interface TagInfo {
  followedTags: string[];
  tagPack: PackRef | null;
  tagsKey: string;
}

interface SnapshotAt {
  seq: number;
  data: SnapshotData;
}

export class SyncService {
  readonly #options: SyncOptions;
  readonly #fetchLock = new KeyedLock();
  readonly #levelLock = new KeyedLock();

  constructor(
    private readonly dataDir: string,
    private readonly store: ArtifactStore,
    private readonly meta: MetadataStore,
    options: Partial<SyncOptions> = {},
  ) {
    this.#options = { ...DEFAULTS, bootstrapMirror: process.env.SNAPCLONE_MIRROR_BOOTSTRAP !== '0', ...options };
    upstreamBounds(); // a bad SNAPCLONE_*_SECONDS fails the start, not every sync
    this.#removeStaleScratch();
  }

  /** Scratch dirs of syncs whose process died (killed mid-build): never published, so just removed. */
  #removeStaleScratch(): void {
    const tmp = join(this.dataDir, 'tmp');
    if (!existsSync(tmp)) return;
    for (const name of readdirSync(tmp)) {
      const m = /^(?:sync|build)-\d+-(\d+)-\d+$/.exec(name);
      if (m && Number(m[1]) !== process.pid && !pidExists(Number(m[1]))) rmSync(join(tmp, name), { recursive: true, force: true });
    }
  }

  mirrorDir(repo: string): string {
    return join(this.dataDir, 'mirrors', `${encodeURIComponent(repo)}.git`);
  }

  /**
   * Delete a repository's mirror. It is renamed aside first (one synchronous step), so a
   * registration of the same name meanwhile starts from an empty mirror, never a half-deleted
   * one, and the slow recursive delete does not block the server.
   */
  async removeMirror(repo: string): Promise<void> {
    const dir = this.mirrorDir(repo);
    if (!existsSync(dir)) return;
    const trash = `${dir}.removed-${process.pid}-${Date.now()}`;
    renameSync(dir, trash);
    await rm(trash, { recursive: true, force: true });
  }

  async run(job: JobRecord, report: (phase: string) => void, fence?: LeaseFence): Promise<{ commit: string | null }> {
    try {
      return await this.#run(job, report, fence);
    } catch (err) {
      throw diskFullError(err) ?? err; // ENOSPC from a write of ours: say so (code io), not a build bug
    }
  }

  async #run(job: JobRecord, report: (phase: string) => void, fence?: LeaseFence): Promise<{ commit: string | null }> {
    const repo = await this.meta.getRepo(job.repo);
    if (!repo) throw new SnapError('not-found', `repository ${job.repo} is not registered (removed?)`);
    const dir = this.mirrorDir(repo.name);
    report('asking upstream');
    const remote = await lsRemote(repo.url);
    const { seq, refs } = await this.#fetchLock.run(repo.name, async () => {
      if (this.#options.bootstrapMirror && !existsSync(dir)) await this.#bootstrap(repo, dir, report);
      await ensureMirror(dir, repo.url);
      let refs = await snapshotRefs(dir);
      if (!sameTips(refs, remote.refs)) {
        report('fetching');
        await fetchMirrorCleanly(dir, repo.url);
        refs = await snapshotRefs(dir);
      }
      // Under the fetch lock, in the repo's one job. Maintenance, not the sync's purpose: a repack
      // that fails (full disk) leaves the mirror as it was, and the sync goes on without it.
      await maybeRepackMirror(dir, mirrorMaxPacks()).then(
        (done) => done && report('repacked the mirror'),
        (err: unknown) => log.warn(`${repo.name}: mirror repack failed, kept the packs as they were: ${(err as Error).message}`),
      );
      await setMirrorHead(dir, remote.head);
      // Under the fetch lock, with the seq: a slower, older sync never writes its HEAD after a
      // newer one's, nor the old upstream's after a re-point. (Across processes the queue runs
      // one job per repository at a time.)
      await this.assertStillRegistered(repo);
      // The (fenced) stamp first: a worker that lost its job writes nothing, its HEAD included.
      const seq = await this.meta.nextSeq(repo.name, fence);
      if ((await this.meta.getRepo(repo.name))?.defaultBranch !== remote.head) await this.meta.setDefaultBranch(repo.name, remote.head);
      return { seq, refs };
    });

    const defaultRef = `refs/heads/${remote.head ?? 'main'}`;
    const names = job.ref ? [job.ref] : [...new Set([defaultRef, ...(await this.meta.listRefs(repo.name)).map((r) => r.ref)])];
    const targets: Target[] = [];
    for (const ref of names) {
      const entry = refs.find((r) => r.name === ref);
      if (!entry && refs.length > 0) {
        if (job.ref) throw new SnapError('not-found', `${ref} does not exist in ${repo.url}`);
        // The branch the upstream's HEAD names but nobody created is built without
        // a commit (git clone leaves HEAD unborn and fetches everything else).
        if (ref !== defaultRef || remote.head === null) {
          // A built ref the upstream deleted: git clone --branch would fail now, so stop serving it.
          if (await this.meta.removeRef(repo.name, ref, seq)) log.info(`${repo.name} ${ref} was deleted upstream; no longer served`);
          continue;
        }
      }
      targets.push({ ref, commit: entry ? (entry.peeled ?? entry.oid) : null });
    }
    const primary = targets[0]?.ref === names[0] ? targets[0]!.commit : null;
    // Known now, before any build: resolve's `newer` tells a job that fetched from one that has not.
    if (primary !== null && job.commit !== primary) await this.meta.updateJob(job.id, { commit: primary });

    const scratch = join(this.dataDir, 'tmp', `sync-${job.id}-${process.pid}-${Date.now()}`);
    try {
      const run = new SyncRun(this, repo, seq, refs, remote.head, targets, scratch, report);
      await run.commitBuilds(job.id, primary ?? job.commit);
      await run.history();
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
    return { commit: primary };
  }

  /**
   * A worker without this mirror builds it from the store when the upstream's history levels
   * are there (builder/bootstrap.ts), so the fetch brings only what is new. Any failure leaves
   * no mirror: the plain fetch of everything follows, and the log says why.
   */
  async #bootstrap(repo: RepoRecord, dir: string, report: (phase: string) => void): Promise<void> {
    try {
      const { levels } = await getLevels(this.meta, repo.name, repo.url);
      if (levels.length === 0) return; // nothing stored yet (the first build): the plain fetch
      const refs = (await latestSnapshot(this.meta, repo.name))?.data.refs ?? [];
      const r = await bootstrapMirror({ dir, url: repo.url, levels, refs, store: this.store, report });
      log.info(`${repo.name}: mirror bootstrapped from the store in ${r.ms} ms: ${r.packs} history pack(s), ${r.bytes} bytes, ${r.refs} refs`);
    } catch (err) {
      if (err instanceof SnapError && err.code === 'conflict') throw err; // the lease is lost: stop, do not fetch everything
      log.warn(`${repo.name}: could not bootstrap the mirror from the store (${(err as Error).message}); fetching everything from the upstream`);
    }
  }

  /** A repository removed or re-pointed while this job ran gets nothing from it. */
  async assertStillRegistered(repo: RepoRecord): Promise<void> {
    const now = await this.meta.getRepo(repo.name);
    if (!now) throw new SnapError('not-found', `${repo.name} was removed during the build; nothing was published`);
    if (now.url !== repo.url) throw new SnapError('conflict', `${repo.name} was re-pointed to ${now.url} during the build; nothing was published`);
  }

  /** @internal for SyncRun */
  get parts() {
    return { store: this.store, meta: this.meta, options: this.#options, levelLock: this.#levelLock, mirrorDir: (r: string) => this.mirrorDir(r) };
  }
}

/** One sync's build and publish steps, after the fetch. */
class SyncRun {
  readonly #store: ArtifactStore;
  readonly #meta: MetadataStore;
  readonly #options: SyncOptions;
  readonly #dir: string;
  readonly #tags = new Map<string, Promise<TagInfo>>();
  /** The views published before this sync, one per commit (read once: see #tagInfo). */
  #priorViews: Map<string, RefView> | null = null;
  /** Tag targets that are trees or blobs (asked of git once per sync, when needed). */
  #treeishTargets: Promise<Set<string>> | null = null;
  #scratchUsed = 0;

  constructor(
    private readonly sync: SyncService,
    private readonly repo: RepoRecord,
    private readonly seq: number,
    private readonly refs: RefEntry[],
    private readonly defaultBranch: string | null,
    private readonly targets: Target[],
    private readonly scratch: string,
    private readonly report: (phase: string) => void,
  ) {
    const p = sync.parts;
    this.#store = p.store;
    this.#meta = p.meta;
    this.#options = p.options;
    this.#dir = p.mirrorDir(repo.name);
  }

  /** Steps 1 and 2: build each target commit without a complete build, publishing its shallow then files records. */
  async commitBuilds(jobId: number, jobCommit: string | null): Promise<void> {
    const commits = [...new Set(this.targets.map((t) => t.commit).filter((c): c is string => c !== null))];
    for (const commit of commits) {
      const existing = await getCommitBuild(this.#meta, this.repo.name, commit);
      if (existing?.stage === 'files' && (await buildIntact(this.#store, existing))) {
        await this.#publishModes(commit, ['shallow', 'files']); // new tags on a built commit: records only
        continue;
      }
      if (jobCommit !== commit) await this.#meta.updateJob(jobId, { commit }); // what the job builds now
      jobCommit = commit;
      const t0 = Date.now();
      const stats: CommitBuildStats = { groups: 0, groupsReused: 0, chunks: 0, chunksReused: 0, newBytes: 0 };
      const build = await buildCommit(
        {
          mirrorDir: this.#dir,
          commit,
          scratchDir: this.#scratchDir(),
          store: this.#store,
          reuse: await this.#reuseIndex(),
          stats,
          report: (p) => this.report(`${p} (${commit.slice(0, 12)})`),
        },
        async (shallow) => {
          await putCommitBuild(this.#meta, this.repo.name, shallow); // durable before any record names it
          await this.#options.beforeStep?.('shallow', this.repo.name);
          await this.#publishModes(commit, ['shallow']);
        },
      );
      if (build.stage !== 'files') throw new SnapError('build-failed', `the build of ${commit} ended at stage ${build.stage}`);
      await putCommitBuild(this.#meta, this.repo.name, build);
      await this.#options.beforeStep?.('files', this.repo.name);
      await this.#publishModes(commit, ['files']);
      log.info(
        `built ${this.repo.name} ${commit} in ${Date.now() - t0} ms: ${stats.groupsReused}/${stats.groups} blob groups and ${stats.chunksReused}/${stats.chunks} archive chunks reused, ${stats.newBytes} new bytes`,
      );
    }
  }

  /** Step 3: history levels and the refs snapshot, then the full records. */
  async history(): Promise<void> {
    const snapshot = await this.sync.parts.levelLock.run(this.repo.name, () => this.#levelsAndSnapshot());
    for (const t of this.targets) {
      if (t.commit !== null && (await getCommitBuild(this.#meta, this.repo.name, t.commit))?.stage !== 'files') continue;
      // A newer sync's snapshot that has the ref elsewhere: that sync publishes its full record.
      if (!snapshot || !holds(snapshot.data, t)) continue;
      await this.#publish(t, 'full', snapshot.seq);
    }
  }

  /** The level chain and the refs snapshot for this sync's tips; null when a newer sync left no snapshot to name. */
  async #levelsAndSnapshot(): Promise<SnapshotAt | null> {
    const meta = this.#meta;
    const latest = await latestSnapshot(meta, this.repo.name);
    const stored = await getLevels(meta, this.repo.name, this.repo.url);
    // A newer sync already wrote the chain or a snapshot from newer tips: extending or
    // compacting it from this sync's older tips would regress it, so leave both alone.
    if ((latest && latest.seq > this.seq) || stored.seq > this.seq) return latest;
    const sameRefs = latest && canonicalJson(latest.data.refs) === canonicalJson(this.refs) && latest.data.defaultBranch === this.defaultBranch;
    let chain = stored.levels;
    // A level that lost a pack (quarantined, truncated) cannot be extended: pack the history
    // again from the current tips. Packing is deterministic, so an unchanged single-level chain
    // gets back the very artifacts it lost.
    const intact = await allStored(this.#store, chain.flatMap((l) => l.packs));
    if (sameRefs && intact && (await allStored(this.#store, latest.data.history))) return latest; // nothing moved: no level, no snapshot
    if (!intact) {
      log.warn(`${this.repo.name}: a history level lost an artifact; packing the history again`);
      chain = [];
    }
    this.report('packing history');
    const update = await updateLevels({
      mirrorDir: this.#dir,
      levels: chain,
      tips: [...new Set(this.refs.map((r) => r.oid))].sort(),
      scratchDir: this.#scratchDir(),
      store: this.#store,
      maxPackBytes: this.#options.historyPackMaxBytes,
      report: this.report,
    });
    if (update.changed) {
      if (!(await meta.setLevels(this.repo.name, this.repo.url, this.seq, update.levels))) await this.sync.assertStillRegistered(this.repo);
      log.info(`${this.repo.name}: history is ${update.levels.length} level(s), ${update.newBytes} new bytes`);
    }
    const data: SnapshotData = { defaultBranch: this.defaultBranch, refs: this.refs, history: update.levels.flatMap((l) => l.packs) };
    if (latest && canonicalJson(latest.data) === canonicalJson(data)) return latest;
    await this.#options.beforeStep?.('history', this.repo.name);
    // Durable before any record names it; refused once the repository is removed or re-pointed.
    if (!(await meta.putSnapshot({ repo: this.repo.name, seq: this.seq, data, createdAt: Date.now() }, this.repo.url))) await this.sync.assertStillRegistered(this.repo);
    return { seq: this.seq, data };
  }

  async #publishModes(commit: string, modes: RefMode[]): Promise<void> {
    for (const t of this.targets) if (t.commit === commit) for (const mode of modes) await this.#publish(t, mode, null);
  }

  /** Publish the (ref, mode) record unless the published one already says the same. */
  async #publish(t: Target, mode: RefMode, snapshot: number | null): Promise<void> {
    const tags = t.commit ? await this.#tagInfo(t.commit) : { followedTags: [], tagPack: null, tagsKey: followedKey(this.refs, []) };
    const view: RefView = {
      defaultBranch: this.defaultBranch,
      refs: mode === 'full' || !t.commit ? [] : shallowRefs(this.refs, t.ref, tags.followedTags),
      followedTags: tags.followedTags,
      tagPack: tags.tagPack,
      tagsKey: tags.tagsKey,
      snapshot,
    };
    const existing = await this.#meta.getRef(this.repo.name, t.ref, mode);
    if (existing && existing.commit === t.commit && canonicalJson(existing.view) === canonicalJson(view)) return;
    if (existing && existing.seq >= this.seq) return; // a newer sync published it: nothing to do
    const applied = await this.#meta.publishRef({ repo: this.repo.name, ref: t.ref, mode, commit: t.commit, seq: this.seq, builtAt: Date.now(), view }, this.repo.url);
    if (!applied) await this.sync.assertStillRegistered(this.repo);
    log.debug(`published ${this.repo.name} ${t.ref} ${mode} at ${t.commit ?? '(none)'} seq ${this.seq}${applied ? '' : ' (a newer one was already published)'}`);
  }

  /**
   * Followed tags and their pack for a commit. A tag change reaches a commit's set only through
   * a tag whose peeled target is the commit, one of its trees or one of its blobs, so the
   * published set is reused while its tags' entries are unchanged (tagsKey), no other tag names
   * the commit, and no other tag names a tree or blob (rare: then git is asked again).
   * A new tag on one commit so costs nothing for refs at the others.
   */
  #tagInfo(commit: string): Promise<TagInfo> {
    let info = this.#tags.get(commit);
    if (!info) {
      info = (async () => {
        const prior = await this.#viewAt(commit);
        if (prior && (await this.#stillFollowed(commit, prior))) return { followedTags: prior.followedTags, tagPack: prior.tagPack, tagsKey: prior.tagsKey };
        const followed = await followedTags(this.#dir, commit, this.refs);
        const entries = this.refs.filter((r) => followed.includes(r.name));
        const tagPack = entries.some((e) => e.peeled !== undefined) ? await buildTagPack(this.#dir, entries, this.#scratchDir(), this.#store) : null;
        return { followedTags: followed, tagPack, tagsKey: followedKey(this.refs, followed) };
      })();
      this.#tags.set(commit, info);
    }
    return info;
  }

  async #viewAt(commit: string): Promise<RefView | undefined> {
    if (!this.#priorViews) {
      const views = new Map<string, RefView>();
      for (const r of await this.#meta.listRefs(this.repo.name)) {
        const v = viewOf(r);
        if (r.commit !== null && !v.legacy && !views.has(r.commit)) views.set(r.commit, v);
      }
      this.#priorViews ??= views;
    }
    return this.#priorViews.get(commit);
  }

  async #stillFollowed(commit: string, prior: RefView): Promise<boolean> {
    if (prior.tagsKey !== followedKey(this.refs, prior.followedTags)) return false; // one of its tags went or moved
    const followed = new Set(prior.followedTags);
    const others = this.refs.filter((r) => r.name.startsWith('refs/tags/') && !followed.has(r.name));
    if (others.some((r) => (r.peeled ?? r.oid) === commit)) return false; // a tag of the commit was added
    if (others.length === 0) return true;
    const treeish = await this.#treeish();
    return !others.some((r) => treeish.has(r.peeled ?? r.oid));
  }

  #treeish(): Promise<Set<string>> {
    this.#treeishTargets ??= (async () => {
      const targets = [...new Set(this.refs.filter((r) => r.name.startsWith('refs/tags/')).map((r) => r.peeled ?? r.oid))];
      if (targets.length === 0) return new Set<string>();
      const out = (await runGit(['cat-file', '--batch-check=%(objectname) %(objecttype)'], { cwd: this.#dir, input: targets.join('\n') + '\n' })).toString('latin1');
      return new Set(out.split('\n').filter((l) => / (tree|blob)$/.test(l)).map((l) => l.split(' ')[0]!));
    })();
    return this.#treeishTargets;
  }

  /** What earlier commit builds stored and still holds: a damaged artifact is built again, not reused. */
  async #reuseIndex(): Promise<ReuseIndex> {
    const reuse: ReuseIndex = { groups: new Map(), chunks: new Map() };
    for (const b of await recentCommitBuilds(this.#meta, this.repo.name, this.#options.reuseBuilds)) {
      for (const g of b.groups) if (!reuse.groups.has(g.key) && (await packStored(this.#store, g.pack))) reuse.groups.set(g.key, g.pack);
      for (const c of b.archive?.chunks ?? []) {
        const key = chunkReuseKey(c); // null: a row from before levels were recorded, not reusable
        if (key === null || reuse.chunks.has(key) || !(await storedWithSize(this.#store, c))) continue;
        const chunk: ChunkRef = { digest: c.digest, size: c.size, rawSize: c.rawSize };
        reuse.chunks.set(key, chunk);
      }
    }
    return reuse;
  }

  #scratchDir(): string {
    const d = join(this.scratch, String(this.#scratchUsed++));
    mkdirSync(d, { recursive: true });
    return d;
  }
}

/**
 * A fetch that fails (a full disk, a dropped connection, a timeout) can leave git's temporary
 * pack in the mirror: space nothing uses, that a full disk needs back. Its tmp files are
 * removed, only those this fetch created (under the fetch lock: no other fetch of this mirror
 * runs; builds write their packs in their scratch, see builder/packs.ts).
 */
async function fetchMirrorCleanly(dir: string, url: string): Promise<void> {
  const packDir = join(dir, 'objects', 'pack');
  const tmpFiles = (): string[] => (existsSync(packDir) ? readdirSync(packDir).filter((f) => f.startsWith('tmp_')) : []);
  const before = new Set(tmpFiles());
  try {
    await fetchMirror(dir);
  } catch (err) {
    for (const f of tmpFiles()) if (!before.has(f)) rmSync(join(packDir, f), { force: true });
    if (err instanceof SnapError && err.code === 'timeout') throw new SnapError('timeout', `upstream ${redactUrl(url)} was too slow: ${err.message}`);
    throw err;
  }
}

async function allStored(store: ArtifactStore, packs: PackRef[]): Promise<boolean> {
  for (const p of packs) if (!(await packStored(store, p))) return false;
  return true;
}

async function packStored(store: ArtifactStore, p: PackRef): Promise<boolean> {
  return (await storedWithSize(store, p.pack)) && (await storedWithSize(store, p.idx));
}

/** Every artifact of a commit build is stored with its size (a stat each, no hashing: see manifest-health.ts). */
async function buildIntact(store: ArtifactStore, b: CommitBuild): Promise<boolean> {
  if (!(await packStored(store, b.skeleton)) || !(await storedWithSize(store, b.table))) return false;
  for (const g of b.groups) if (!(await packStored(store, g.pack))) return false;
  for (const c of b.archive?.chunks ?? []) if (!(await storedWithSize(store, c))) return false;
  return true;
}

/** Digest of the entries (name, oid, peeled) of the named tags in `refs`; a missing name counts as such. */
export function followedKey(refs: RefEntry[], names: string[]): string {
  const byName = new Map(refs.map((r) => [r.name, r]));
  return sha256Hex(JSON.stringify(names.map((n) => { const r = byName.get(n); return [n, r?.oid ?? null, r?.peeled ?? null]; })));
}

/** Whether a snapshot has the target's ref at the target's commit (or, for no commit, not at all). */
function holds(data: SnapshotData, t: Target): boolean {
  const entry = data.refs.find((r) => r.name === t.ref);
  return t.commit === null ? !entry : !!entry && (entry.peeled ?? entry.oid) === t.commit;
}

/** One holder at a time per key, in arrival order. */
class KeyedLock {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = before.then(() => mine);
    this.#tails.set(key, tail);
    await before;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
