/**
 * Mirror bootstrap (issue 8: workers are ephemeral). A worker with no mirror for a
 * repository whose history the store already holds builds the mirror from the store
 * instead of fetching the whole upstream: the history levels are git's own packs with
 * git's .idx (pack-objects output), so they are copied as they are into a fresh bare
 * repository, and the refs of the latest snapshot are written next to them. The normal
 * fetch that follows then negotiates from those refs and brings only what is new.
 *
 * Everything happens in a scratch directory beside the mirror, renamed into place only
 * once complete and checked; any failure removes it, so a half mirror is never trusted
 * by a later build (the caller falls back to the plain fetch). Nothing is read from
 * another worker's disk: only the store and what the caller read from the database.
 *
 * Trust: every artifact is verified against its SHA-256 while it streams to disk
 * (bounded memory), and each level holds the closure of its tips (levels.ts), so only
 * refs whose object is a level tip are written; the others are fetched like new ones.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, readdirSync, renameSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { basename, dirname, join } from 'node:path';
import type { RefEntry, ArtifactRef } from '../clonepack/manifest.js';
import { isValidRefName } from '../clonepack/refs.js';
import { formatPackedRefs } from '../git/packed-refs.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { integrityError } from '../util/errors.js';
import { isOid } from '../util/hash.js';
import { mapLimit } from '../util/limit.js';
import { pidExists } from '../util/process.js';
import { runGit } from './gitproc.js';
import type { HistoryLevel } from './levels.js';
import { ensureMirror } from './mirror.js';

const PACK_NAME = /^pack-[0-9a-f]{40}$/;
/** Artifacts downloaded at once (a bucket answers each with its own latency). */
const PARALLEL_DOWNLOADS = 4;

export interface BootstrapRequest {
  /** The mirror to create; must not exist yet. */
  dir: string;
  url: string;
  /** The level chain of `url` (oldest first), as the database holds it. */
  levels: HistoryLevel[];
  /** The refs of the latest snapshot (fully peeled); only those whose object a level holds are written. */
  refs: RefEntry[];
  store: ArtifactStore;
  report?: (phase: string) => void;
}

export interface BootstrapResult {
  packs: number;
  /** Bytes of packs and idx files downloaded. */
  bytes: number;
  /** Refs written (packed-refs). */
  refs: number;
  ms: number;
}

/**
 * Build the mirror at `dir` from the store. Throws on any failure, leaving nothing at `dir`
 * (and no scratch directory); the caller logs why and fetches everything instead.
 */
export async function bootstrapMirror(req: BootstrapRequest): Promise<BootstrapResult> {
  const t0 = Date.now();
  if (existsSync(req.dir)) throw new Error(`${req.dir} already exists`);
  const packs = req.levels.flatMap((l) => l.packs);
  if (packs.length === 0) throw new Error('the history levels hold no packs');
  for (const p of packs) if (!PACK_NAME.test(p.name)) throw integrityError(`a history level names a bad pack ${JSON.stringify(p.name)}`);
  const refs = heldRefs(req.refs, req.levels);
  // Without refs the fetch could not name what the mirror has, and would bring everything anyway.
  if (refs.length === 0) throw new Error('no ref of the latest snapshot is a history level tip');
  removeStaleBootstraps(req.dir);
  const tmp = `${req.dir}.boot-${process.pid}-${Date.now()}`;
  try {
    // ensureMirror writes exactly the mirror config later fetches rely on (into tmp: it does not exist yet).
    await ensureMirror(tmp, req.url);
    const packDir = join(tmp, 'objects', 'pack');
    req.report?.('bootstrapping mirror from the store');
    const sizes = await mapLimit(packs, PARALLEL_DOWNLOADS, async (p) => {
      // The .pack first, the .idx last: git takes a pack only with its idx (and here nothing reads tmp yet).
      await download(req.store, p.pack, join(packDir, `${p.name}.pack`));
      await download(req.store, p.idx, join(packDir, `${p.name}.idx`));
      return p.pack.size + p.idx.size;
    });
    writeFileSync(join(tmp, 'packed-refs'), formatPackedRefs(refs));
    await checkObjects(tmp, refs);
    renameSync(tmp, req.dir);
    return { packs: packs.length, bytes: sizes.reduce((a, b) => a + b, 0), refs: refs.length, ms: Date.now() - t0 };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Snapshot refs (branches and tags only) whose object is a level tip: the levels hold their whole closure. */
export function heldRefs(refs: RefEntry[], levels: HistoryLevel[]): RefEntry[] {
  const tips = new Set(levels.flatMap((l) => l.tips));
  return refs.filter(
    (r) =>
      (r.name.startsWith('refs/heads/') || r.name.startsWith('refs/tags/')) &&
      isValidRefName(r.name) &&
      isOid(r.oid) &&
      (r.peeled === undefined || isOid(r.peeled)) &&
      tips.has(r.oid),
  );
}

/** Stream one artifact to `path`, verifying its size and SHA-256 on the way; read-only, as git leaves packs. */
async function download(store: ArtifactStore, a: ArtifactRef, path: string): Promise<void> {
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  // keep: false: the pack lands in the mirror; a disk-cache copy as well would only double the worker's disk use.
  await pipeline(await store.open(a.digest, undefined, { keep: false }), tap, createWriteStream(path, { flags: 'wx' }));
  const digest = hash.digest('hex');
  if (bytes !== a.size || digest !== a.digest)
    throw integrityError(`stored artifact ${a.digest} read back as ${bytes} bytes with SHA-256 ${digest} (expected ${a.size} bytes)`);
  chmodSync(path, 0o444);
}

/** Every ref's object (and peeled target) is readable from the packs: a pack and idx that do not match fail here. */
async function checkObjects(repo: string, refs: RefEntry[]): Promise<void> {
  const oids = [...new Set(refs.flatMap((r) => (r.peeled ? [r.oid, r.peeled] : [r.oid])))];
  const out = (await runGit(['cat-file', '--batch-check=%(objectname) %(objecttype)'], { cwd: repo, input: oids.join('\n') + '\n' })).toString('latin1');
  const found = new Set(out.split('\n').filter((l) => / (commit|tag|tree|blob)$/.test(l)).map((l) => l.slice(0, 40)));
  const missing = oids.filter((o) => !found.has(o));
  if (missing.length > 0) throw integrityError(`the history packs lack ${missing.length} ref object(s), e.g. ${missing[0]}`);
}

/** Scratch mirrors of bootstraps whose process died (a worker killed mid-bootstrap): never used, so removed. */
function removeStaleBootstraps(dir: string): void {
  const parent = dirname(dir);
  if (!existsSync(parent)) return;
  const prefix = `${basename(dir)}.boot-`;
  for (const name of readdirSync(parent)) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)-\d+$/.exec(name.slice(prefix.length));
    if (m && Number(m[1]) !== process.pid && !pidExists(Number(m[1]))) rmSync(join(parent, name), { recursive: true, force: true });
  }
}
