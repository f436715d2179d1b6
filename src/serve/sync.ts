/**
 * A sync job: ask the upstream what it has, fetch it into the mirror, stamp the
 * ordering seq, then build and publish every ref that needs it. The seq is
 * taken after the fetch, so a build started later always carries a newer
 * upstream state, and publishRef keeps the newest.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { lsRemote } from '../build/upstream.js';
import { ensureMirror, fetchMirror, setMirrorHead, snapshotRefs } from '../build/mirror.js';
import { buildClonepack, type BuildOptions } from '../build/builder.js';
import { parseManifest, type PackRef, type RefEntry } from '../clonepack/manifest.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { manifestIntact } from './manifest-health.js';
import type { JobRecord, MetadataStore } from '../metadata/metadata-store.js';
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

  async run(job: JobRecord, report: (phase: string) => void): Promise<{ commit: string | null }> {
    const repo = this.meta.getRepo(job.repo);
    if (!repo) throw new SnapError('not-found', `unknown repository ${job.repo}`);
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
        continue; // a built ref that the upstream deleted: keep serving its last build
      }
      const commit = entry ? (entry.peeled ?? entry.oid) : null;
      if (ref === targets[0]) primaryCommit = commit;
      const existing = this.meta.getRef(repo.name, ref);
      if (existing && existing.commit === commit && (await this.sameRefsAsBuilt(existing.manifest, refs)) && (await manifestIntact(this.store, existing.manifest))) continue;
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
        const applied = this.meta.publishRef({
          repo: repo.name,
          ref,
          commit,
          manifest: result.digest,
          manifestSize: result.size,
          seq,
          builtAt: Date.now(),
          sizes: result.sizes,
        });
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
      return false;
    }
  }
}

function sameTips(mirror: RefEntry[], upstream: Map<string, string>): boolean {
  if (mirror.length !== upstream.size) return false;
  return mirror.every((r) => upstream.get(r.name) === r.oid);
}
