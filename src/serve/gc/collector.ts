/**
 * Garbage collection of the artifact store: mark and sweep.
 *
 * Mark: every artifact reachable from a published ref record (its composed manifest and what the
 * manifest names), from the composed manifests retention keeps (SNAPCLONE_GC_RETAIN older ones
 * per repo, ref and mode), and from each repository's history level chain and latest snapshot
 * (what the next sync extends or reuses). Sweep: an artifact found unreachable is recorded with
 * when it was FIRST seen so (an object's mtime says nothing: a sync reusing an old artifact does
 * not refresh it), forgotten once reachable again, and deleted only when it has stayed
 * unreachable for the grace period (longer than the longest clone: a clone that resolved a
 * manifest just before it stopped being retained still downloads everything).
 *
 * Deletes never overlap a build: a build reuses stored artifacts (a put that finds the digest
 * present, storedWithSize) before any record names them, so the delete phase first sets the
 * "deleting" flag, which job claims check, and goes ahead only if no job runs (the metadata
 * store's gcBeginDelete says how that is race-free); then reachability is checked again, and each
 * delete first renews the flag. One pass at a time across servers (gcAcquirePass).
 */
import { randomUUID } from 'node:crypto';
import { manifestArtifacts, parseManifest } from '../../clonepack/manifest.js';
import type { MetadataStore } from '../../metadata/metadata-store.js';
import type { ArtifactStore } from '../../storage/artifact-store.js';
import { SnapError, invalid } from '../../util/errors.js';
import { log } from '../../util/log.js';
import type { ManifestComposer } from '../compose.js';
import { getLevels, latestSnapshot } from '../records.js';

export interface GcOptions {
  /** Older composed manifests kept clonable per (repo, ref, mode). */
  retain: number;
  /** How long an artifact stays unreachable before it may be deleted. */
  graceMs: number;
}

export interface Tally {
  count: number;
  bytes: number;
}

export interface GcReport {
  /** False: another pass was running (this one did nothing). */
  ran: boolean;
  reason?: string;
  dryRun: boolean;
  startedAt: number;
  finishedAt: number;
  stored: Tally;
  reachable: Tally;
  /** Unreachable now (in grace + due). */
  unreachable: Tally;
  /** Unreachable for less than the grace period: kept for now. */
  inGrace: Tally;
  /** Deleted by this pass (a dry run: what it would delete). */
  deleted: Tally;
  /** Due, but not deleted in this pass: a build was running (tried again next pass). */
  deferred: Tally;
  /** Due, but reachable again at the check right before the delete: kept. */
  keptAtRecheck: number;
  retain: number;
  graceSeconds: number;
}

const PASS_LEASE_MS = 30 * 60_000;
/** The "deleting" flag's life; renewed before every delete, so a crashed pass blocks builds this long at most. */
const DELETE_FLAG_MS = 300_000;

export function gcOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): GcOptions {
  const retain = intEnv(env, 'SNAPCLONE_GC_RETAIN', 3);
  const grace = intEnv(env, 'SNAPCLONE_GC_GRACE_SECONDS', 3600);
  return { retain, graceMs: grace * 1000 };
}

export function intEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw invalid(`${name} must be a whole number >= 0, not ${JSON.stringify(raw)}`);
  return n;
}

const zero = (): Tally => ({ count: 0, bytes: 0 });
const add = (t: Tally, bytes: number): void => {
  t.count++;
  t.bytes += bytes;
};

export class GarbageCollector {
  /** This process's pass in progress: a request of the same kind joins it, another waits for it. */
  #running: { dryRun: boolean; report: Promise<GcReport> } | null = null;

  constructor(
    private readonly store: ArtifactStore,
    readonly meta: MetadataStore,
    private readonly composer: ManifestComposer,
    readonly options: GcOptions,
  ) {}

  /**
   * Run one pass, or join this process's pass of the same kind (both get its report: one pass
   * runs). A pass of another server makes it do nothing (ran: false). A dry run records and deletes nothing.
   */
  async run(opts: { dryRun?: boolean } = {}): Promise<GcReport> {
    const dryRun = opts.dryRun === true;
    for (;;) {
      const current = this.#running;
      if (!current) break;
      if (current.dryRun === dryRun) return current.report;
      await current.report.catch(() => undefined);
    }
    const report = this.#pass(dryRun).finally(() => {
      if (this.#running?.report === report) this.#running = null;
    });
    this.#running = { dryRun, report };
    return report;
  }

  /** What is unreachable now, from the records of the last passes (GET /v1/gc, status). */
  async pending(): Promise<{ unreachable: Tally; reclaimableNow: Tally }> {
    const now = Date.now();
    const unreachable = zero();
    const reclaimableNow = zero();
    for (const u of await this.meta.gcListUnreachable()) {
      add(unreachable, u.size);
      if (now - u.firstSeen >= this.options.graceMs) add(reclaimableNow, u.size);
    }
    return { unreachable, reclaimableNow };
  }

  #skipped(dryRun: boolean, reason: string): GcReport {
    const now = Date.now();
    return { ...this.#empty(dryRun, now), ran: false, reason, finishedAt: now };
  }

  #empty(dryRun: boolean, startedAt: number): GcReport {
    return {
      ran: true,
      dryRun,
      startedAt,
      finishedAt: startedAt,
      stored: zero(),
      reachable: zero(),
      unreachable: zero(),
      inGrace: zero(),
      deleted: zero(),
      deferred: zero(),
      keptAtRecheck: 0,
      retain: this.options.retain,
      graceSeconds: this.options.graceMs / 1000,
    };
  }

  async #pass(dryRun: boolean): Promise<GcReport> {
    const owner = `${process.pid}-${randomUUID()}`;
    if (!(await this.meta.gcAcquirePass(owner, PASS_LEASE_MS))) return this.#skipped(dryRun, 'another GC pass is running (another server)');
    const report = this.#empty(dryRun, Date.now());
    try {
      await this.#sweep(owner, dryRun, report);
      report.finishedAt = Date.now();
      if (!dryRun) await this.meta.gcSaveReport(report);
      log.info(
        `gc${dryRun ? ' (dry run)' : ''}: ${report.deleted.count} artifacts (${report.deleted.bytes} bytes) ${dryRun ? 'to delete' : 'deleted'}, ` +
          `${report.inGrace.count} (${report.inGrace.bytes} bytes) in grace, ${report.deferred.count} deferred, ${report.reachable.count} reachable`,
      );
      return report;
    } finally {
      await this.meta.gcReleasePass(owner).catch(() => undefined); // expires anyway
    }
  }

  async #sweep(owner: string, dryRun: boolean, report: GcReport): Promise<void> {
    const marked = await this.#mark();
    const stored = new Map<string, number>();
    for await (const a of this.store.list()) stored.set(a.digest, a.size);
    for (const size of stored.values()) add(report.stored, size);
    const known = new Map((await this.meta.gcListUnreachable()).map((u) => [u.digest, u.firstSeen]));
    const now = Date.now();
    const unreachable: { digest: string; size: number; firstSeen: number }[] = [];
    for (const [digest, size] of stored) {
      if (marked.has(digest)) add(report.reachable, size);
      else unreachable.push({ digest, size, firstSeen: known.get(digest) ?? now });
    }
    if (!dryRun) {
      // Reachable again (or gone): forgotten, so a later sighting starts its grace afresh.
      const unreachableSet = new Set(unreachable.map((u) => u.digest));
      await this.meta.gcForgetUnreachable([...known.keys()].filter((d) => !unreachableSet.has(d)));
      await this.meta.gcNoteUnreachable(unreachable.filter((u) => !known.has(u.digest)), now);
    }
    const due: { digest: string; size: number }[] = [];
    for (const u of unreachable) {
      add(report.unreachable, u.size);
      if (now - u.firstSeen >= this.options.graceMs) due.push(u);
      else add(report.inGrace, u.size);
    }
    if (due.length === 0) return;
    if (dryRun) {
      for (const d of due) add(report.deleted, d.size);
      return;
    }
    await this.meta.gcAcquirePass(owner, PASS_LEASE_MS); // renew: the mark may have been long
    if (!(await this.meta.gcBeginDelete(owner, DELETE_FLAG_MS, this.options.graceMs))) {
      for (const d of due) add(report.deferred, d.size);
      log.info(`gc: a build is running; ${due.length} due artifacts are deleted by a later pass`);
      return;
    }
    try {
      // No job can start now: what is reachable can only shrink. Check again right before deleting:
      // the records (a manifest composed since the first read forgets its artifacts' sightings)...
      const still = new Map((await this.meta.gcListUnreachable()).map((u) => [u.digest, u.firstSeen]));
      const renew = async () => {
        if (!(await this.meta.gcRenewDelete(owner, DELETE_FLAG_MS))) throw new SnapError('conflict', 'gc: lost the delete flag while marking again');
      };
      // ...and reachability, renewing the flag as the mark goes (a large install marks for long).
      const again = await this.#mark(renew);
      for (let i = 0; i < due.length; i++) {
        const d = due[i]!;
        const seen = still.get(d.digest);
        if (again.has(d.digest) || seen === undefined || Date.now() - seen < this.options.graceMs) {
          report.keptAtRecheck++;
          await this.meta.gcForgetUnreachable([d.digest]);
          continue;
        }
        if (!(await this.meta.gcRenewDelete(owner, DELETE_FLAG_MS))) {
          for (const rest of due.slice(i)) add(report.deferred, rest.size);
          log.warn('gc: lost the delete flag (the pass took too long); the rest waits for a later pass');
          break;
        }
        // The rows first: a resolve never hands out a manifest about to be deleted.
        await this.meta.gcDeleteComposed(d.digest);
        this.composer.forgetDigest(d.digest);
        if (await this.store.delete(d.digest)) add(report.deleted, d.size);
        await this.meta.gcForgetUnreachable([d.digest]);
      }
    } finally {
      await this.meta.gcEndDelete(owner);
    }
  }

  /** Every digest reachable now. Any failure (a record whose manifest cannot be composed) fails the pass: nothing is deleted on a partial mark. */
  async #mark(renew?: () => Promise<void>): Promise<Set<string>> {
    const marked = new Set<string>();
    const manifest = async (digest: string): Promise<boolean> => {
      if (marked.has(digest)) return true;
      let bytes: Buffer;
      try {
        bytes = await this.store.read(digest);
      } catch (err) {
        if (err instanceof SnapError && err.code === 'artifact-missing') return false;
        throw err;
      }
      marked.add(digest);
      for (const a of manifestArtifacts(parseManifest(bytes))) marked.add(a.digest);
      return true;
    };
    for (const repo of await this.meta.listRepos()) {
      await renew?.();
      for (const rec of await this.meta.listRefs(repo.name)) {
        const m = await this.composer.manifestFor(rec); // composes (and stores) one not composed yet
        if (!(await manifest(m.digest))) throw new SnapError('internal', `gc: the manifest of ${repo.name} ${rec.ref} (${rec.mode}) is missing`);
      }
      for (const level of (await getLevels(this.meta, repo.name, repo.url)).levels) {
        for (const p of level.packs) marked.add(p.pack.digest).add(p.idx.digest);
      }
      for (const p of (await latestSnapshot(this.meta, repo.name))?.data.history ?? []) marked.add(p.pack.digest).add(p.idx.digest);
    }
    let rows = 0;
    for (const row of await this.meta.gcRetainedComposed(this.options.retain + 1)) {
      if (++rows % 64 === 0) await renew?.();
      // A row whose manifest is gone (deleted by hand, quarantined) is kept: a put restores it.
      await manifest(row.digest);
    }
    return marked;
  }
}

/** Runs a pass every `seconds` (0: never), one at a time; failures are logged and the next pass tries again. */
export class PeriodicGc {
  #timer: NodeJS.Timeout | null = null;
  #current: Promise<unknown> = Promise.resolve();
  #stopped = false;

  constructor(
    private readonly gc: GarbageCollector,
    private readonly seconds: number,
  ) {}

  start(): void {
    if (this.seconds <= 0 || this.#timer) return;
    this.#timer = setInterval(() => {
      if (this.#stopped) return;
      this.#current = this.gc.run().catch((err: unknown) => log.warn(`gc: the periodic pass failed: ${(err as Error).message}`));
    }, this.seconds * 1000);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#current;
  }
}
