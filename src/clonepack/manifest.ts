/**
 * The clonepack manifest: a small, versioned, canonical JSON document that names
 * every artifact of one build by digest and size. It is itself stored as an
 * artifact, so its digest is the identity of the build.
 *
 * Everything here is pure: encode() gives canonical bytes (sorted keys, no
 * whitespace), parse() validates untrusted bytes with the same predicates the
 * builder uses before it writes.
 */
import { isDigest, isOid } from '../util/hash.js';
import { invalid } from '../util/errors.js';
import { isValidRefName } from './refs.js';
import { quoted } from './paths.js';

export const MANIFEST_FORMAT = 'snapclone.manifest';
/** Version this builder writes; parseManifest also reads version 1 (which has no `mode`: full). */
export const MANIFEST_VERSION = 2;
export const READABLE_VERSIONS: readonly number[] = [1, 2];

/**
 * What a manifest is enough for. A clonepack is published in steps (two-phase
 * publish): `shallow` (HEAD packs, table, and the archive only when a file is
 * converted) first, then `files` (the whole archive), then `full` (history levels
 * and every branch and tag). A manifest of a later mode serves every earlier one.
 */
export type ManifestMode = 'shallow' | 'files' | 'full';
export const MANIFEST_MODES: readonly ManifestMode[] = ['shallow', 'files', 'full'];

/** Limits checked before anything is allocated from a manifest's numbers. */
export const LIMITS = {
  maxArtifactSize: 64 * 2 ** 30, // 64 GiB
  maxPacks: 10_000,
  maxChunks: 1_000_000,
  maxRefs: 1_000_000,
  maxEntries: 50_000_000,
  maxManifestBytes: 256 * 2 ** 20,
} as const;

/**
 * Most raw bytes one archive chunk may hold. The client keeps up to 12 chunks in
 * memory, so this is what bounds it (12 x 4 MiB = 48 MiB) whatever a server
 * declares. 4 MiB covers version 1's fixed 4 MiB chunks; builds cut at most this.
 */
export const MAX_CHUNK_RAW = 4 * 2 ** 20;

export interface ArtifactRef {
  digest: string; // lowercase hex SHA-256 of the artifact's bytes
  size: number; // bytes
}

export interface PackRef {
  /** File name stem git expects: pack-<40 hex>, equal to the pack's trailer checksum. */
  name: string;
  pack: ArtifactRef;
  idx: ArtifactRef;
  /** Number of objects in the pack (from its header). */
  objects: number;
}

export interface ChunkRef extends ArtifactRef {
  /** Bytes after decompression: the slice of the work-tree stream this chunk holds. */
  rawSize: number;
}

export interface RefEntry {
  name: string; // full ref name, refs/heads/* or refs/tags/*
  oid: string;
  /** For annotated tags: the object the tag finally points at. */
  peeled?: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: 1 | 2;
  /** Version 2: which clone modes it serves (see ManifestMode). Absent in version 1, which means full. */
  mode?: ManifestMode;
  /** The ref this clonepack was built for, e.g. refs/heads/main or refs/tags/v1. */
  ref: string;
  /**
   * The commit the ref pointed at, or null when the ref does not exist: an
   * upstream with no commits, or the branch an upstream's HEAD names when nobody
   * created it (then `refs` and `historyPacks` still hold everything, as git
   * clone fetches every branch and tag and leaves HEAD unborn).
   */
  commit: string | null;
  /** The branch the upstream's HEAD names (for origin/HEAD), or null if detached/unknown. */
  defaultBranch: string | null;
  /** Every refs/heads/* and refs/tags/* of the upstream when the build fetched it, sorted by name. */
  refs: RefEntry[];
  /**
   * The tags of `refs` a `--depth 1` clone keeps, as git's tag following does:
   * every tag whose (fully peeled) target is `commit`, one of its trees or one of
   * its blobs. Sorted. Absent in manifests of older builders, which meant the tags
   * peeling to `commit`; absent or empty when `commit` is null.
   */
  followedTags?: string[];
  /** Undeltified closure of `commit` (commit, trees, blobs, and the tag objects of `followedTags`). */
  headPacks: PackRef[];
  /**
   * Deltified packs of everything reachable from `refs`: the history levels, oldest
   * first, disjoint (no object in two). Empty unless the mode is full.
   */
  historyPacks: PackRef[];
  /** The file table: one entry per index entry (see filetable.ts), zstd-compressed. */
  table: ArtifactRef & { entries: number; rawSize: number };
  /**
   * The work tree as a stream of file contents in table order, cut into independent
   * zstd frames. Complete (bytes = the table's stream length) except in a `shallow`
   * manifest without converted files, where it may be empty.
   */
  archive: { codec: 'zstd'; bytes: number; chunks: ChunkRef[] };
}

/** Canonical JSON: object keys sorted, no whitespace, no undefined. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') {
    return JSON.stringify(value);
  }
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`canonical JSON allows only safe integers, got ${value}`);
    return String(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
  }
  throw new Error(`cannot encode ${typeof value} as canonical JSON`);
}

export function encodeManifest(m: Manifest): Buffer {
  validateManifest(m);
  return Buffer.from(canonicalJson(m), 'utf8');
}

/** Parse and validate untrusted manifest bytes. Throws SnapError('invalid') on anything unexpected. */
export function parseManifest(bytes: Uint8Array): Manifest {
  if (bytes.length > LIMITS.maxManifestBytes) throw invalid('manifest is too large');
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw invalid('manifest is not valid JSON');
  }
  validateManifest(value);
  return value;
}

function fail(what: string): never {
  throw invalid(`invalid manifest: ${what}`);
}

/**
 * An untrusted value as it may appear in a one-line error: numbers as they are, strings quoted,
 * cut at 40 characters, with every control character escaped; other values by their type
 * (String() of an object from JSON can throw, and could print anything).
 */
function shown(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (typeof v !== 'string') return v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'an object' : String(v);
  return quoted(v, 40);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function onlyKeys(v: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(v)) if (!allowed.includes(k)) fail(`unexpected field ${where}.${/^[A-Za-z0-9_]{1,40}$/.test(k) ? k : shown(k)}`);
}

function checkSize(v: unknown, where: string, max: number = LIMITS.maxArtifactSize): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) fail(`${where} is not a valid size`);
  return v;
}

function checkArtifact(v: unknown, where: string, extra: readonly string[] = []): asserts v is ArtifactRef {
  if (!isObject(v)) fail(`${where} is not an object`);
  onlyKeys(v, ['digest', 'size', ...extra], where);
  if (!isDigest(v.digest)) fail(`${where}.digest is not a SHA-256 hex digest`);
  checkSize(v.size, `${where}.size`);
}

const PACK_NAME = /^pack-[0-9a-f]{40}$/;

function checkPacks(v: unknown, where: string): asserts v is PackRef[] {
  if (!Array.isArray(v) || v.length > LIMITS.maxPacks) fail(`${where} is not a list of packs`);
  const names = new Set<string>();
  v.forEach((p, i) => {
    const w = `${where}[${i}]`;
    if (!isObject(p)) fail(`${w} is not an object`);
    onlyKeys(p, ['name', 'pack', 'idx', 'objects'], w);
    if (typeof p.name !== 'string' || !PACK_NAME.test(p.name)) fail(`${w}.name is not pack-<sha1>`);
    if (names.has(p.name)) fail(`${w}.name repeats ${p.name}`);
    names.add(p.name);
    checkArtifact(p.pack, `${w}.pack`);
    checkArtifact(p.idx, `${w}.idx`);
    checkSize(p.objects, `${w}.objects`, 2 ** 32 - 1);
  });
}

export function validateManifest(v: unknown): asserts v is Manifest {
  if (!isObject(v)) fail('not an object');
  onlyKeys(
    v,
    ['format', 'version', 'mode', 'ref', 'commit', 'defaultBranch', 'refs', 'followedTags', 'headPacks', 'historyPacks', 'table', 'archive'],
    'manifest',
  );
  if (v.format !== MANIFEST_FORMAT) fail('format is not snapclone.manifest');
  if (typeof v.version !== 'number' || !READABLE_VERSIONS.includes(v.version))
    fail(`unsupported version ${shown(v.version)} (this client reads ${READABLE_VERSIONS.join(' and ')})`);
  if (v.version === 1 && v.mode !== undefined) fail('a version 1 manifest has no mode');
  if (v.version === 2 && !MANIFEST_MODES.includes(v.mode as ManifestMode)) fail('mode is not shallow, files or full');
  const full = manifestMode(v as unknown as Manifest) === 'full';
  if (typeof v.ref !== 'string' || !isValidRefName(v.ref) || !/^refs\/(heads|tags)\//.test(v.ref)) fail('ref is not a branch or tag ref');
  if (v.commit !== null && !isOid(v.commit)) fail('commit is not an object id');
  if (v.defaultBranch !== null && (typeof v.defaultBranch !== 'string' || !isValidRefName(`refs/heads/${v.defaultBranch}`)))
    fail('defaultBranch is not a branch name');
  if (!Array.isArray(v.refs) || v.refs.length > LIMITS.maxRefs) fail('refs is not a list');
  let prev = '';
  v.refs.forEach((r, i) => {
    const w = `refs[${i}]`;
    if (!isObject(r)) fail(`${w} is not an object`);
    onlyKeys(r, ['name', 'oid', 'peeled'], w);
    if (typeof r.name !== 'string' || !isValidRefName(r.name) || !/^refs\/(heads|tags)\//.test(r.name)) fail(`${w}.name is not a branch or tag ref`);
    if (r.name <= prev) fail(`${w} is out of order or repeated`);
    prev = r.name;
    if (!isOid(r.oid)) fail(`${w}.oid is not an object id`);
    if (r.peeled !== undefined && !isOid(r.peeled)) fail(`${w}.peeled is not an object id`);
  });
  checkFollowedTags(v.followedTags, v.refs as RefEntry[]);
  checkPacks(v.headPacks, 'headPacks');
  checkPacks(v.historyPacks, 'historyPacks');
  checkArtifact(v.table, 'table', ['entries', 'rawSize']);
  const table = v.table as Manifest['table'];
  checkSize(table.entries, 'table.entries', LIMITS.maxEntries);
  checkSize(table.rawSize, 'table.rawSize', 2 ** 31 - 1);
  if (table.size > zstdBound(table.rawSize)) fail('table.size is larger than zstd can produce for its rawSize');
  const a = v.archive;
  if (!isObject(a)) fail('archive is not an object');
  onlyKeys(a, ['codec', 'bytes', 'chunks'], 'archive');
  if (a.codec !== 'zstd') fail('archive.codec is not zstd');
  checkSize(a.bytes, 'archive.bytes', Number.MAX_SAFE_INTEGER);
  if (!Array.isArray(a.chunks) || a.chunks.length > LIMITS.maxChunks) fail('archive.chunks is not a list');
  let total = 0;
  a.chunks.forEach((c, i) => {
    checkArtifact(c, `archive.chunks[${i}]`, ['rawSize']);
    const raw = checkSize((c as unknown as ChunkRef).rawSize, `archive.chunks[${i}].rawSize`, 2 ** 31 - 1);
    if (raw > MAX_CHUNK_RAW) fail(`archive.chunks[${i}].rawSize ${raw} is larger than a chunk may be (${MAX_CHUNK_RAW} bytes)`);
    if ((c as ChunkRef).size > zstdBound(raw)) fail(`archive.chunks[${i}].size is larger than zstd can produce for its rawSize`);
    total += raw;
  });
  if (total !== a.bytes) fail('archive chunk sizes do not add up to archive.bytes');
  if (v.commit === null) {
    // The ref does not exist upstream: nothing to check out, at most the history of the other refs.
    if (!v.ref.startsWith('refs/heads/')) fail('a manifest without a commit must be for a branch');
    if (v.refs.some((r) => (r as RefEntry).name === v.ref)) fail('a manifest without a commit names a ref that exists');
    if (v.headPacks.length || table.entries || a.chunks.length || (v.followedTags as string[] | undefined)?.length)
      fail('a manifest without a commit must have no head packs, files or followed tags');
    if (full && (v.refs.length === 0) !== (v.historyPacks.length === 0))
      fail('a manifest without a commit must have history packs exactly when it has refs');
  } else {
    if (v.headPacks.length === 0) fail('headPacks is empty');
    if (full && v.historyPacks.length === 0) fail('historyPacks is empty');
  }
  if (!full && v.historyPacks.length > 0) fail(`a ${String(v.mode)} manifest has no history packs`);
}

/** The mode a manifest serves: version 1 manifests are full. */
export function manifestMode(m: Pick<Manifest, 'mode'>): ManifestMode {
  return m.mode ?? 'full';
}

/** Whether a manifest of mode `have` serves a clone that needs `want`. */
export function modeServes(have: ManifestMode, want: ManifestMode): boolean {
  return MANIFEST_MODES.indexOf(have) >= MANIFEST_MODES.indexOf(want);
}

/** followedTags: optional; sorted, unique names of tags listed in refs. */
function checkFollowedTags(v: unknown, refs: RefEntry[]): void {
  if (v === undefined) return;
  if (!Array.isArray(v) || v.length > refs.length) fail('followedTags is not a list of tags from refs');
  const tags = new Set(refs.filter((r) => r.name.startsWith('refs/tags/')).map((r) => r.name));
  let prev = '';
  v.forEach((t, i) => {
    if (typeof t !== 'string' || !tags.has(t)) fail(`followedTags[${i}] is not a tag listed in refs`);
    if (t <= prev) fail(`followedTags[${i}] is out of order or repeated`);
    prev = t;
  });
}

/** Largest zstd frame for `raw` input bytes (ZSTD_COMPRESSBOUND plus frame header slack). */
export function zstdBound(raw: number): number {
  return raw + Math.floor(raw / 256) + 128 * 1024;
}

/** Every artifact the manifest names, deduplicated: what a store must hold for the build to be servable. */
export function manifestArtifacts(m: Manifest): ArtifactRef[] {
  const out = new Map<string, ArtifactRef>();
  const add = (a: ArtifactRef) => out.set(a.digest, { digest: a.digest, size: a.size });
  add(m.table);
  for (const p of [...m.headPacks, ...m.historyPacks]) {
    add(p.pack);
    add(p.idx);
  }
  for (const c of m.archive.chunks) add(c);
  return [...out.values()];
}
