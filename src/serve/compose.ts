/**
 * Manifests are composed by the server from the records a sync publishes: the
 * commit build (HEAD packs, table, archive: shared by every ref at the commit),
 * the record's view (followed tags and their tag pack) and, for full, the refs
 * snapshot (every branch and tag, the history levels). So a sync that moves one
 * branch writes nothing for the others: their manifests are composed when a
 * resolve first asks, stored create-only, and remembered (memory + a DB row keyed
 * by the record, whose seq names its inputs: a record is never rewritten in place,
 * and by a digest of the commit build, the one input a rebuild may replace).
 *
 * composeManifest is pure: the same records give the same bytes.
 */
import { compress } from 'zstd-napi';
import type { CommitBuild } from '../builder/commit-build.js';
import { encodeTable } from '../clonepack/filetable.js';
import { encodeManifest, manifestArtifacts, MANIFEST_FORMAT, MANIFEST_VERSION, type Manifest, type PackRef, type RefEntry } from '../clonepack/manifest.js';
import type { MetadataStore, ModeSizes, RefRecord } from '../metadata/metadata-store.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { SnapError } from '../util/errors.js';
import { sha256Hex } from '../util/hash.js';
import { getCommitBuild, getSnapshot, viewOf, type RefView, type SnapshotData } from './records.js';

/** The table of a manifest without a commit: no entries. Fixed bytes (level fixed), so one artifact. */
export const EMPTY_TABLE: Buffer = compress(encodeTable([]), { compressionLevel: 3 });

export interface ComposeInput {
  ref: string;
  mode: RefRecord['mode'];
  commit: string | null;
  view: RefView;
  build: CommitBuild | null;
  snapshot: SnapshotData | null;
  /** Digest and size of EMPTY_TABLE (stored by the caller), for manifests without a commit. */
  emptyTable: { digest: string; size: number };
}

export function composeManifest(input: ComposeInput): Manifest {
  const { ref, mode, commit, view, build, snapshot } = input;
  const full = mode === 'full';
  if (full && !snapshot) throw new SnapError('internal', `full manifest of ${ref} without a refs snapshot`);
  if (commit === null) {
    // The ref does not exist upstream: git clone leaves HEAD unborn and fetches every branch and tag.
    if (!snapshot) throw new SnapError('internal', `manifest of ${ref} without a commit needs a refs snapshot`);
    return {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      mode,
      ref,
      commit: null,
      defaultBranch: snapshot.defaultBranch,
      refs: snapshot.refs,
      headPacks: [],
      historyPacks: full ? snapshot.history : [],
      table: { ...input.emptyTable, entries: 0, rawSize: encodeTable([]).length },
      archive: { codec: 'zstd', bytes: 0, chunks: [] },
    };
  }
  if (!build || build.commit !== commit) throw new SnapError('internal', `no commit build for ${ref} at ${commit}`);
  if (mode !== 'shallow' && build.stage !== 'files') throw new SnapError('internal', `the build of ${commit} has no archive yet`);
  const headPacks: PackRef[] = [build.skeleton, ...build.groups.map((g) => g.pack)];
  if (view.tagPack) headPacks.push(view.tagPack); // last: the table's pack indexes name skeleton and blob packs only
  const archive = mode === 'shallow' && !build.converted ? null : build.archive;
  if (mode !== 'shallow' && !archive) throw new SnapError('internal', `the build of ${commit} has no archive`);
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    mode,
    ref,
    commit,
    defaultBranch: full ? snapshot!.defaultBranch : view.defaultBranch,
    refs: full ? snapshot!.refs : view.refs,
    followedTags: view.followedTags,
    headPacks,
    historyPacks: full ? snapshot!.history : [],
    table: build.table,
    archive: {
      codec: 'zstd',
      bytes: archive ? archive.bytes : 0,
      chunks: archive ? archive.chunks.map((c) => ({ digest: c.digest, size: c.size, rawSize: c.rawSize })) : [],
    },
  };
}

/** The entries a shallow or files manifest lists: the ref itself and its followed tags, sorted. */
export function shallowRefs(all: RefEntry[], ref: string, followed: string[]): RefEntry[] {
  const names = new Set([ref, ...followed]);
  return all.filter((r) => names.has(r.name)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** What each clone mode downloads, for status (shallow counts a converted build's whole archive: an upper bound). */
export function modeSizes(m: Manifest): ModeSizes {
  const packs = (ps: PackRef[]) => ps.reduce((a, p) => a + p.pack.size + p.idx.size, 0);
  const archive = m.archive.chunks.reduce((a, c) => a + c.size, 0);
  return {
    shallow: m.table.size + packs(m.headPacks) + (m.mode === 'shallow' ? archive : 0),
    editable: m.table.size + packs(m.historyPacks) + archive,
    files: m.table.size + archive,
  };
}

export interface ComposedManifest {
  digest: string;
  size: number;
  sizes: ModeSizes;
}

const MEMORY_ENTRIES = 4096;

export class ManifestComposer {
  readonly #memory = new Map<string, ComposedManifest>();
  #emptyTable: Promise<{ digest: string; size: number }> | null = null; // the latest put

  constructor(
    private readonly store: ArtifactStore,
    private readonly meta: MetadataStore,
  ) {}

  /** The stored manifest of a record: composed, stored and remembered the first time. */
  async manifestFor(rec: RefRecord): Promise<ComposedManifest> {
    const view = viewOf(rec);
    if (view.legacy) return { digest: view.legacy.manifest, size: view.legacy.manifestSize, sizes: view.legacy.sizes };
    // The commit build is the one input a record does not fix: a rebuild after damage replaces
    // its row (same stage), and its bytes may differ (another git or zlib). So the key names it.
    const build = rec.commit ? await getCommitBuild(this.meta, rec.repo, rec.commit) : null;
    // Spaces part the fields: no ref name holds one, and PostgreSQL text cannot hold the NUL used before.
    const key = `${rec.ref} ${rec.mode} ${rec.seq} ${build ? sha256Hex(JSON.stringify(build)) : '-'}`;
    const memKey = `${rec.repo}\0${key}`;
    const hit = this.#memory.get(memKey);
    if (hit) return hit;
    const manifest = composeManifest({
      ref: rec.ref,
      mode: rec.mode,
      commit: rec.commit,
      view,
      build,
      snapshot: view.snapshot !== null ? await getSnapshot(this.meta, rec.repo, view.snapshot) : null,
      emptyTable: rec.commit ? { digest: '', size: 0 } : await this.#storedEmptyTable(),
    });
    const sizes = modeSizes(manifest);
    let stored = await this.meta.getComposed(rec.repo, key);
    if (!stored || !(await this.store.stat(stored.digest))) {
      const info = await this.store.putBytes(encodeManifest(manifest)); // create-only: the same bytes are one artifact
      stored = { digest: info.digest, size: info.size };
      await this.meta.putComposed(rec.repo, key, stored, { ref: rec.ref, mode: rec.mode, seq: rec.seq });
      // Referenced again from now on: an artifact GC saw unreachable before (a build reused it)
      // starts its grace afresh when it next goes, however few passes see it referenced meanwhile.
      await this.meta.gcForgetUnreachable([stored.digest, ...new Set(manifestArtifacts(manifest).map((a) => a.digest))]);
    }
    const out = { ...stored, sizes };
    if (this.#memory.size >= MEMORY_ENTRIES) this.#memory.delete(this.#memory.keys().next().value!);
    this.#memory.set(memKey, out);
    return out;
  }

  #storedEmptyTable(): Promise<{ digest: string; size: number }> {
    // Put (a stat when present) every time: garbage collection deletes it while no manifest names it.
    this.#emptyTable = this.store.putBytes(EMPTY_TABLE).then(
      (i) => ({ digest: i.digest, size: i.size }),
      (err) => {
        this.#emptyTable = null;
        throw err;
      },
    );
    return this.#emptyTable;
  }

  /** Forget every remembered manifest of this digest (garbage collection deletes it). */
  forgetDigest(digest: string): void {
    for (const [k, v] of this.#memory) if (v.digest === digest) this.#memory.delete(k);
  }

  /** Forget a removed or re-pointed repository's manifests (called by the API). */
  forget(repo: string): void {
    for (const k of this.#memory.keys()) if (k.startsWith(`${repo}\0`)) this.#memory.delete(k);
  }
}
