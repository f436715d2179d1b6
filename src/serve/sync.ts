/**
 * A sync job: ask the upstream what it has, fetch it into the mirror, stamp the
 * ordering seq, then build and publish every ref that needs it. The seq is
 * taken after the fetch, so a build started later always carries a newer
 * upstream state, and publishRef keeps the newest.
 *
 * What a sync builds: the job's ref, or (a plain sync) the default branch and
 * every ref built before, whether by add, sync --branch or on demand. Each is
 * rebuilt only when its own commit moved (or its build lost an artifact): a
 * push to one branch or a new tag never rebuilds the others (on a repository
 * with hundreds of built tags that was minutes per sync). The default branch
 * is the exception: it is also rebuilt when the branch and tag list changed, so
 * its full clone shows them as git clone would. Other builds keep the list of
 * other refs from when they were built, until their own commit moves.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { lsRemote } from '../build/upstream.js';
import { ensureMirror, fetchMirror, setMirrorHead, snapshotRefs } from '../build/mirror.js';
import { buildClonepack, type BuildOptions } from '../build/builder.js';
import { parseManifest, type PackRef, type RefEntry } from '../clonepack/manifest.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { manifestIntact } from './manifest-health.js';
import type { JobRecord, MetadataStore, RepoRecord } from '../metadata/metadata-store.js';
import { SnapError } from '../util/errors.js';
import { log } from '../util/log.js';

export class SyncService {
  constructor(
    private readonly dataDir: string,
    private readonly store: ArtifactStore,
    private readonly meta: MetadataStore,
    private readonly buildOptions: Partial<BuildOptions> = {},
  ) {}

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

  async run(job: JobRecord, report: (phase: string) => void): Promise<{ commit: string | null }> {
    const repo = this.meta.getRepo(job.repo);
    if (!repo) throw new SnapError('not-found', `repository ${job.repo} is not registered (removed?)`);
    const dir = this.mirrorDir(repo.name);
    report('asking upstream');
    const remote = await lsRemote(repo.url);
    await ensureMirror(dir, repo.url);
    const before = await snapshotRefs(dir);
    if (!sameTips(before, remote.refs)) {
      report('fetching');
      await fetchMirror(dir);
    }
    const seq = this.meta.nextSeq(repo.name);
    await setMirrorHead(dir, remote.head);
    this.assertStillRegistered(repo);
    this.meta.setDefaultBranch(repo.name, remote.head);
    const refs = await snapshotRefs(dir);

    const defaultRef = `refs/heads/${remote.head ?? 'main'}`;
    const targets = job.ref ? [job.ref] : [...new Set([defaultRef, ...this.meta.listRefs(repo.name).map((r) => r.ref)])];
    let primaryCommit: string | null = null;
    let history: PackRef[] | undefined;
    for (const ref of targets) {
      const entry = refs.find((r) => r.name === ref);
      if (!entry && refs.length > 0) {
        if (job.ref) throw new SnapError('not-found', `${ref} does not exist in ${repo.url}`);
        // The branch the upstream's HEAD names but nobody created is built without
        // a commit (git clone leaves HEAD unborn and fetches everything else).
        if (ref !== defaultRef || remote.head === null) continue; // a built ref that the upstream deleted: keep serving its last build
      }
      const commit = entry ? (entry.peeled ?? entry.oid) : null;
      if (ref === targets[0]) primaryCommit = commit;
      const existing = this.meta.getRef(repo.name, ref);
      // Rebuilt only when its own commit moved, or a stored artifact of its build is
      // damaged; the default branch also when the branches and tags changed, so a full
      // clone of it lists them as git clone would. Other refs keep the branch and tag list
      // of their build (the freshness issue separates the two).
      if (
        existing &&
        existing.commit === commit &&
        (ref !== defaultRef || (await this.sameRefsAsBuilt(existing.manifest, refs))) &&
        (await manifestIntact(this.store, existing.manifest))
      )
        continue;
      report(`building ${ref}`);
      const scratch = join(this.dataDir, 'tmp', `build-${job.id}-${process.pid}-${Date.now()}`);
      mkdirSync(scratch, { recursive: true });
      try {
        const t0 = Date.now();
        const result = await buildClonepack({
          mirrorDir: dir,
          ref,
          refs,
          defaultBranch: remote.head,
          scratchDir: scratch,
          store: this.store,
          options: this.buildOptions,
          reuseHistory: history,
          report: (p) => report(`${p} (${ref})`),
        });
        history = result.manifest.historyPacks;
        const applied = this.meta.publishRef(
          { repo: repo.name, ref, commit, manifest: result.digest, manifestSize: result.size, seq, builtAt: Date.now(), sizes: result.sizes },
          repo.url,
        );
        if (!applied) this.assertStillRegistered(repo);
        log.info(`built ${repo.name} ${ref} at ${commit ?? '(empty)'} in ${Date.now() - t0} ms${applied ? '' : ' (a newer build was already published)'}`);
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
    }
    return { commit: primaryCommit };
  }

  private async sameRefsAsBuilt(manifestDigest: string, refs: RefEntry[]): Promise<boolean> {
    try {
      const m = parseManifest(await this.store.read(manifestDigest));
      return JSON.stringify(m.refs) === JSON.stringify(refs);
    } catch {
      return false; // unreadable or damaged: rebuild
    }
  }

  /** A repository removed or re-pointed while this job ran gets nothing from it. */
  private assertStillRegistered(repo: RepoRecord): void {
    const now = this.meta.getRepo(repo.name);
    if (!now) throw new SnapError('not-found', `${repo.name} was removed during the build; nothing was published`);
    if (now.url !== repo.url) throw new SnapError('conflict', `${repo.name} was re-pointed to ${now.url} during the build; nothing was published`);
  }
}

function sameTips(mirror: RefEntry[], upstream: Map<string, string>): boolean {
  if (mirror.length !== upstream.size) return false;
  return mirror.every((r) => upstream.get(r.name) === r.oid);
}
