/**
 * Whether the bytes the server sends are the bytes their digest names. Disk
 * bytes rot, get overwritten or truncated; the server must notice instead of
 * serving them forever. Each artifact is hashed on its first whole read after
 * start (streamed from disk, or loaded into the hot cache); digests that passed
 * are remembered, so later reads cost nothing. A copy that fails is quarantined
 * in the store and dropped from the cache: the next request answers 404
 * artifact-missing, status and /healthz show it, and the next sync rebuilds what
 * names it. A client whose download failed its checks reports it, which
 * re-hashes the stored copy: at most once per artifact per interval, a few at a
 * time, so reports cannot make the server hash without bound.
 */
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import type { ArtifactStore, StoredCopy } from '../storage/artifact-store.js';
import { SnapError } from '../util/errors.js';
import { Semaphore } from '../util/limit.js';
import { log } from '../util/log.js';

/** 'intact': the stored copy hashed right, or is a fresh put that replaced the damaged one being checked. */
export type CheckResult = 'intact' | 'damaged' | 'absent';

export interface IntegrityOptions {
  /** Verified digests remembered (oldest forgotten first, then verified again on their next read). */
  maxVerified?: number;
  /** A requested re-check of one artifact runs at most once per this many ms. */
  recheckIntervalMs?: number;
  /** Re-checks hashing at the same time. */
  concurrency?: number;
  /** Re-checks waiting for a slot; more requests are dropped. */
  maxQueued?: number;
  /** Budget of checks that clients' reports start, all artifacts together: bytes per second, and the burst. */
  reportBytesPerSecond?: number;
  reportBurstBytes?: number;
  /** A report about an artifact that a report-started check found intact within this many ms is ignored. */
  reportedIntactMs?: number;
}

/** Defaults of the report budget (documented in docs/API.md). */
export const REPORT_LIMITS = {
  bytesPerSecond: 32 * 2 ** 20,
  burstBytes: 256 * 2 ** 20,
  /** What a check costs at least, however small the artifact: opening and reading a file is not free. */
  minCostBytes: 2 ** 20,
  intactMs: 10 * 60_000,
};

export class ArtifactIntegrity {
  readonly #verified = new Map<string, true>(); // insertion order: oldest first
  readonly #lastCheck = new Map<string, number>();
  readonly #inFlight = new Map<string, Promise<CheckResult>>();
  readonly #listeners: ((digest: string) => void)[] = [];
  readonly #slots: Semaphore;
  readonly #maxVerified: number;
  readonly #intervalMs: number;
  readonly #maxQueued: number;
  readonly #reportRate: number;
  readonly #reportBurst: number;
  readonly #reportedIntactMs: number;
  #reportTokens: number;
  #reportTokensAt = Date.now();
  readonly #reportedIntact = new Map<string, number>();

  constructor(
    private readonly store: ArtifactStore,
    opts: IntegrityOptions = {},
  ) {
    this.#maxVerified = opts.maxVerified ?? 100_000;
    this.#intervalMs = opts.recheckIntervalMs ?? 60_000;
    this.#maxQueued = opts.maxQueued ?? 64;
    this.#slots = new Semaphore(opts.concurrency ?? 2);
    this.#reportRate = opts.reportBytesPerSecond ?? REPORT_LIMITS.bytesPerSecond;
    this.#reportBurst = opts.reportBurstBytes ?? REPORT_LIMITS.burstBytes;
    this.#reportedIntactMs = opts.reportedIntactMs ?? REPORT_LIMITS.intactMs;
    this.#reportTokens = this.#reportBurst;
  }

  isVerified(digest: string): boolean {
    return this.#verified.has(digest);
  }

  markVerified(digest: string): void {
    this.#verified.delete(digest);
    this.#verified.set(digest, true);
    if (this.#verified.size > this.#maxVerified) this.#verified.delete(this.#verified.keys().next().value!);
  }

  /** Called with each digest quarantined through this object (the hot cache drops its copy). */
  onQuarantine(listener: (digest: string) => void): void {
    this.#listeners.push(listener);
  }

  /** Quarantine the stored copy (only `copy`, when given: see ArtifactStore.openCopy). */
  async quarantine(digest: string, reason: string, copy?: StoredCopy): Promise<boolean> {
    // Forgotten first, whatever the store does: a copy replaced meanwhile is simply read again.
    this.#verified.delete(digest);
    for (const l of this.#listeners) l(digest);
    return this.store.quarantine(digest, reason, copy); // logs the digest and reason
  }

  /**
   * A read of `digest` found the wrong bytes. Hash the stored copy once more,
   * unpaced, and quarantine it only if it is still wrong: the file may have
   * been replaced or restored while the first read ran, and quarantining by
   * path would then move the good copy away.
   */
  async confirmDamage(digest: string, actual: string, bytes: number, when: string): Promise<CheckResult> {
    const again = await this.#hash(digest);
    if (!again) return 'absent';
    if (again.actual === digest) {
      this.markVerified(digest);
      log.warn(`artifact ${digest}: ${mismatchReason(actual, bytes, when)}, but a second read finds it intact (changed while being read?)`);
      return 'intact';
    }
    // Only the copy the second read hashed: a put may have stored a good one since.
    if (await this.quarantine(digest, mismatchReason(again.actual, again.bytes, when), again.copy)) return 'damaged';
    // Gone, or replaced by a put (which verified its bytes): nothing known damaged is stored.
    log.warn(`artifact ${digest}: ${mismatchReason(again.actual, again.bytes, when)}, but that copy was replaced or removed meanwhile; not quarantined`);
    return (await this.store.stat(digest)) ? 'intact' : 'absent';
  }

  /**
   * A pass-through for one whole artifact that hashes what it carries and holds
   * back the last chunk until the hash is known: bytes already sent cannot be
   * taken back, but a response cut short cannot pass for complete. On a
   * mismatch the stream fails, and the copy is quarantined if confirmed bad.
   */
  verifying(digest: string): Transform {
    const hash = createHash('sha256');
    let held: Buffer | null = null;
    let bytes = 0;
    return new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        bytes += chunk.length;
        const previous = held;
        held = chunk;
        done(null, previous);
      },
      flush: (done) => {
        const actual = hash.digest('hex');
        if (actual === digest) {
          this.markVerified(digest);
          return done(null, held);
        }
        // Whatever the second read finds, the bytes this response carried were wrong.
        this.confirmDamage(digest, actual, bytes, 'while serving it').then(
          () => done(new SnapError('integrity', `stored artifact ${digest} read as ${actual}`)),
          (err: unknown) => done(err as Error),
        );
      },
    });
  }

  /**
   * Hash the stored copy now and quarantine it if it is wrong. Concurrent
   * checks of one artifact share one read; at most `concurrency` hash at once.
   * `pace`, awaited after each chunk read, lets a background scan bound its rate.
   */
  check(digest: string, pace?: (bytes: number) => Promise<void>): Promise<CheckResult> {
    let p = this.#inFlight.get(digest);
    if (!p) {
      p = this.#slots.use(() => this.#checkStored(digest, pace)).finally(() => this.#inFlight.delete(digest));
      this.#inFlight.set(digest, p);
    }
    return p;
  }

  /**
   * Ask for a check in the background (a client's report, or a read that could
   * not be verified inline). Skipped, returning false, if this artifact was
   * checked within the interval or too many checks are waiting.
   */
  requestCheck(digest: string, why: string): boolean {
    return this.#request(digest, why, () => true);
  }

  /**
   * A client's report about a stored artifact of `size` bytes. Anyone may report, and can
   * read every digest from status: besides the per-artifact interval, reports share one
   * budget of bytes hashed (a token bucket; each check costs its size, at least
   * minCostBytes), and an artifact a report found intact is not checked for a report
   * again for reportedIntactMs. Reads, the scrubber and requestCheck are not limited by it.
   */
  requestReportedCheck(digest: string, size: number, why: string): boolean {
    const now = Date.now();
    const intactAt = this.#reportedIntact.get(digest);
    if (intactAt !== undefined && now - intactAt < this.#reportedIntactMs) {
      log.debug(`check of artifact ${digest} (${why}) skipped: a report found it intact ${Math.round((now - intactAt) / 1000)} s ago`);
      return false;
    }
    const affordable = () => {
      this.#reportTokens = Math.min(this.#reportBurst, this.#reportTokens + ((now - this.#reportTokensAt) / 1000) * this.#reportRate);
      this.#reportTokensAt = now;
      if (this.#reportTokens <= 0) {
        log.debug(`check of artifact ${digest} (${why}) dropped: the budget for reported checks is spent`);
        return false;
      }
      // May go below zero (an artifact larger than the burst): later reports wait until it is paid back.
      this.#reportTokens -= Math.max(size, REPORT_LIMITS.minCostBytes);
      return true;
    };
    return this.#request(digest, why, affordable, (result) => {
      if (result === 'intact') {
        if (this.#reportedIntact.size >= 10_000) for (const [d, t] of this.#reportedIntact) if (Date.now() - t >= this.#reportedIntactMs) this.#reportedIntact.delete(d);
        this.#reportedIntact.set(digest, Date.now());
      }
    });
  }

  #request(digest: string, why: string, affordable: () => boolean, done?: (result: CheckResult) => void): boolean {
    const now = Date.now();
    const last = this.#lastCheck.get(digest);
    if (this.#inFlight.has(digest) || (last !== undefined && now - last < this.#intervalMs)) {
      log.debug(`check of artifact ${digest} (${why}) skipped: checked recently`);
      return false;
    }
    if (this.#inFlight.size >= this.#maxQueued) {
      log.warn(`check of artifact ${digest} (${why}) dropped: ${this.#inFlight.size} checks already waiting`);
      return false;
    }
    if (!affordable()) return false;
    this.#forgetOldChecks(now);
    this.#lastCheck.set(digest, now);
    this.check(digest).then(
      (result) => {
        done?.(result);
        if (result !== 'damaged') log.info(`artifact ${digest} checked (${why}): ${result}`);
      },
      (err: unknown) => log.error(`check of artifact ${digest} failed: ${(err as Error).message}`),
    );
    return true;
  }

  /** Wait for checks in flight (before the store goes away). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#inFlight.values()]);
  }

  async #checkStored(digest: string, pace?: (bytes: number) => Promise<void>): Promise<CheckResult> {
    const h = await this.#hash(digest, pace);
    if (!h) return 'absent';
    if (h.actual === digest) {
      this.markVerified(digest);
      return 'intact';
    }
    return this.confirmDamage(digest, h.actual, h.bytes, 'when re-checked');
  }

  /** SHA-256 and length of the stored copy, or null if there is none. */
  async #hash(digest: string, pace?: (bytes: number) => Promise<void>): Promise<{ actual: string; bytes: number; copy: StoredCopy } | null> {
    const hash = createHash('sha256');
    let bytes = 0;
    let copy: StoredCopy;
    try {
      const opened = await this.store.openCopy(digest);
      copy = opened.copy;
      for await (const chunk of opened.stream as AsyncIterable<Buffer>) {
        hash.update(chunk);
        bytes += chunk.length;
        await pace?.(chunk.length);
      }
    } catch (err) {
      if (err instanceof SnapError && err.code === 'artifact-missing') return null;
      throw err;
    }
    return { actual: hash.digest('hex'), bytes, copy };
  }

  #forgetOldChecks(now: number): void {
    if (this.#lastCheck.size < 10_000) return;
    for (const [d, t] of this.#lastCheck) if (now - t >= this.#intervalMs) this.#lastCheck.delete(d);
  }
}

function mismatchReason(actual: string, bytes: number, when: string): string {
  return `its ${bytes} stored bytes hash to ${actual} (found ${when})`;
}
