/**
 * ArtifactStore on an S3-compatible bucket: <prefix>sha256/<digest> objects, and
 * <prefix>quarantine/<digest> for copies found damaged (reason and time in the
 * object's metadata).
 *
 * Puts hash the file first (one read, which also gives the Content-MD5 of each
 * part), then upload from the same open file: the server checks each body
 * against its MD5, so what lands is what was hashed. Create-only: a PUT (or the
 * multipart completion) carries `If-None-Match: *`; a 412 means the digest is
 * stored, which a HEAD confirms by size (wrong size: that copy is damaged,
 * quarantined, and the put done again). With `conditionalWrites: false`, for
 * stores that accept the header without enforcing it, a HEAD before the put
 * stands in: weaker, since two racing puts of one digest both write, but
 * harmless, as their bytes are equal.
 *
 * Quarantine is copy-then-delete (S3 has no rename), conditional on the ETag
 * of the copy found damaged (openCopy's StoredCopy): weaker than the local
 * rename, since a crash between the two leaves the damaged copy in place (found
 * again by the next check), and a store that ignores If-Match on DELETE may
 * delete a good copy put in the instant between the check and the delete (a
 * rebuild then puts it again).
 */
import { createHash } from 'node:crypto';
import { lstat, open, unlink, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { ArtifactInfo, ArtifactStore, QuarantinedArtifact, StoredCopy } from '../artifact-store.js';
import { checkDigest, checkRange } from '../artifact-store.js';
import { SnapError, integrityError, invalid } from '../../util/errors.js';
import { isDigest, sha256Hex } from '../../util/hash.js';
import { log } from '../../util/log.js';

// The SDK's own switch for its multi-line "NodeVersionSupportWarning" (emitted when a client is
// made, on Node < 22): that text on stderr breaks the one-JSON-event-per-line log. Set before any
// client is made; an operator's explicit setting wins.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const MiB = 1024 * 1024;
const READ_CHUNK = MiB;
/** S3's own bounds: parts of 5 MiB at least (but the last), at most 10,000 of them; presigned URLs live at most 7 days. */
const MIN_PART = 5 * MiB;
const MAX_PARTS = 10_000;
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;
/**
 * Without these the SDK waits forever on a store that accepts connections and stalls. The idle
 * timeout is per socket (no bytes either way for that long), not per transfer: big streams go on.
 */
const DEFAULT_TIMEOUTS = { connectMs: 5_000, idleMs: 60_000 };
/** Rounds of "412: stored already" followed by a HEAD that finds nothing before a put gives up. */
const MAX_REFUSED_PUTS = 5;

export interface S3StoreOptions {
  bucket: string;
  /** Prepended to every key, e.g. 'snapclone/' (default ''). */
  prefix?: string;
  /** An S3-compatible endpoint (selects path-style addressing); default AWS. */
  endpoint?: string;
  region?: string;
  /** Default: the SDK's chain (environment, shared config, instance roles). */
  credentials?: S3ClientConfig['credentials'];
  /** False for stores that accept If-None-Match without enforcing it (see the file comment). Default true. */
  conditionalWrites?: boolean;
  /** Files above this many bytes go up in parts (default 64 MiB). */
  multipartThreshold?: number;
  /** Part size (default 16 MiB; raised if a file would need more than 10,000 parts). */
  partSize?: number;
  /** Connection and socket-idle timeouts in ms (default 5 s and 60 s); a timeout is an unreachable store. */
  timeouts?: { connectMs?: number; idleMs?: number };
  /** A client to use instead of one made from the options above (the store does not destroy it). */
  client?: S3Client;
}

export class S3ArtifactStore implements ArtifactStore {
  readonly bucket: string;
  readonly prefix: string;
  readonly #client: S3Client;
  readonly #ownsClient: boolean;
  readonly #conditional: boolean;
  readonly #threshold: number;
  readonly #partSize: number;
  /** Stats in flight, one HEAD per digest however many ask at once (reuse checks come in bursts). */
  readonly #statting = new Map<string, Promise<Found | null>>();

  constructor(opts: S3StoreOptions) {
    if (!opts.bucket) throw invalid('an S3 artifact store needs a bucket');
    this.bucket = opts.bucket;
    this.prefix = opts.prefix ?? '';
    this.#conditional = opts.conditionalWrites ?? true;
    this.#threshold = Math.max(1, opts.multipartThreshold ?? 64 * MiB);
    this.#partSize = Math.max(MIN_PART, opts.partSize ?? 16 * MiB);
    this.#ownsClient = !opts.client;
    const timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
    this.#client =
      opts.client ??
      new S3Client({
        region: opts.region ?? sdkRegionOr('us-east-1'),
        requestHandler: { connectionTimeout: timeouts.connectMs, socketTimeout: timeouts.idleMs },
        ...(opts.endpoint ? { endpoint: opts.endpoint, forcePathStyle: true } : {}),
        ...(opts.credentials ? { credentials: opts.credentials } : {}),
        // Non-AWS stores reject or mangle the SDK's default flexible checksums.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
  }

  /** Resolves if the bucket exists and these credentials may use it (GET /readyz); a one-line unreachable error otherwise. */
  async ping(): Promise<void> {
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      if (status(err) === 404) throw new SnapError('unreachable', `object store: bucket ${this.bucket} does not exist (check SNAPCLONE_S3_BUCKET)`, { cause: err });
      throw storeError('HEAD-BUCKET', this.bucket, err);
    }
  }

  /** Close the client's connections (when the store made it). */
  close(): void {
    if (this.#ownsClient) this.#client.destroy();
  }

  async putFile(path: string, claimed?: string): Promise<ArtifactInfo> {
    if (claimed !== undefined) checkDigest(claimed);
    if (!(await lstat(path)).isFile()) throw invalid(`${path} is not a regular file`);
    // One open file for the hash and the upload: a file renamed over `path` meanwhile is not what goes up.
    const fh = await open(path, 'r');
    let info: ArtifactInfo;
    try {
      const size = (await fh.stat()).size;
      const parts = this.#partsFor(size);
      const hashed = await hashFile(fh, parts);
      if (hashed.size !== size) throw integrityError(`file ${path} changed size while being read`);
      if (claimed !== undefined && hashed.digest !== claimed) throw integrityError(`file ${path} hashes to ${hashed.digest}, not the claimed ${claimed}`);
      info = { digest: hashed.digest, size };
      await this.#store(info, parts.length > 1 ? { fh, parts, md5s: hashed.md5s } : { fh, md5: hashed.md5s[0]! });
    } finally {
      await fh.close();
    }
    await unlink(path).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    });
    return info;
  }

  async putBytes(bytes: Uint8Array): Promise<ArtifactInfo> {
    const info = { digest: sha256Hex(bytes), size: bytes.length };
    await this.#store(info, { bytes, md5: createHash('md5').update(bytes).digest('base64') });
    return info;
  }

  async stat(digest: string): Promise<ArtifactInfo | null> {
    checkDigest(digest);
    const h = await this.#head(digest);
    return h ? { digest, size: h.size } : null;
  }

  async open(digest: string, range?: { start: number; end: number }): Promise<Readable> {
    checkDigest(digest);
    if (range) checkRange(range);
    return (await this.#get(digest, range)).stream;
  }

  async openCopy(digest: string): Promise<{ stream: Readable; copy: StoredCopy }> {
    checkDigest(digest);
    const { stream, copy } = await this.#get(digest);
    return { stream, copy };
  }

  async read(digest: string): Promise<Buffer> {
    checkDigest(digest);
    const key = this.#key(digest);
    try {
      const res = await this.#client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (err) {
      throw storeError('GET', key, err, digest);
    }
  }

  async presign(digest: string, seconds: number): Promise<string> {
    checkDigest(digest);
    if (!Number.isSafeInteger(seconds) || seconds < 1 || seconds > MAX_PRESIGN_SECONDS) {
      throw invalid(`presigned URLs live 1 to ${MAX_PRESIGN_SECONDS} seconds, not ${seconds}`);
    }
    // Only host is signed: a client may add a Range header.
    return getSignedUrl(this.#client, new GetObjectCommand({ Bucket: this.bucket, Key: this.#key(digest) }), { expiresIn: seconds });
  }

  async quarantine(digest: string, reason: string, copy?: StoredCopy): Promise<boolean> {
    checkDigest(digest);
    const key = this.#key(digest);
    const found = await this.#headKey(key);
    if (!found || (copy !== undefined && found.copy !== copy)) {
      if (found) log.warn(`artifact ${digest}: not quarantined, the copy found damaged was replaced meanwhile`);
      return false;
    }
    const record: QuarantinedArtifact = { digest, reason: oneLine(reason), since: Date.now() };
    try {
      await this.#client.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: this.#quarantineKey(digest),
          CopySource: `${this.bucket}/${encodeURIComponent(key).replace(/%2F/g, '/')}`,
          CopySourceIfMatch: found.etag,
          MetadataDirective: 'REPLACE',
          Metadata: { reason: encodeURIComponent(record.reason), since: String(record.since) },
        }),
      );
    } catch (err) {
      if (status(err) === 412 || status(err) === 404) return false; // replaced or removed since the HEAD
      throw storeError('COPY', key, err);
    }
    try {
      // If-Match: never delete a good copy put since the HEAD (where the store enforces it).
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key, IfMatch: found.etag }));
    } catch (err) {
      if (status(err) === 412) {
        log.warn(`artifact ${digest}: not quarantined, the copy found damaged was replaced meanwhile`);
        return false;
      }
      if (status(err) !== 404) throw storeError('DELETE', key, err);
    }
    log.error(`artifact ${digest} quarantined: ${record.reason}`);
    return true;
  }

  async listQuarantined(): Promise<QuarantinedArtifact[]> {
    const digests: string[] = [];
    for await (const a of this.#listUnder(`${this.prefix}quarantine/`)) digests.push(a.digest);
    const out: QuarantinedArtifact[] = [];
    for (const digest of digests.sort()) {
      // A copy back under its digest (a rebuild's put) ends the quarantine; the damaged copy stays for inspection.
      if (await this.#head(digest)) continue;
      const key = this.#quarantineKey(digest);
      let res;
      try {
        res = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      } catch (err) {
        if (status(err) === 404) continue;
        throw storeError('HEAD', key, err);
      }
      const since = Number(res.Metadata?.since);
      let reason = 'unknown';
      try {
        if (res.Metadata?.reason) reason = decodeURIComponent(res.Metadata.reason);
      } catch {
        // not ours, or mangled: 'unknown'
      }
      out.push({ digest, reason, since: Number.isFinite(since) ? since : (res.LastModified?.getTime() ?? 0) });
    }
    return out;
  }

  list(): AsyncIterable<ArtifactInfo> {
    return this.#listUnder(`${this.prefix}sha256/`);
  }

  /** Every object under `prefix` whose name (after it) is a digest, page by page. */
  async *#listUnder(prefix: string): AsyncIterable<ArtifactInfo> {
    let token: string | undefined;
    do {
      let res;
      try {
        res = await this.#client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      } catch (err) {
        throw storeError('LIST', prefix, err);
      }
      for (const o of res.Contents ?? []) {
        const digest = o.Key?.slice(prefix.length);
        if (isDigest(digest)) yield { digest, size: o.Size ?? 0 };
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(digest: string): Promise<boolean> {
    checkDigest(digest);
    const key = this.#key(digest);
    // DELETE answers 204 whether or not the key existed: a HEAD says whether there was a copy.
    const found = await this.#headKey(key);
    if (!found) return false;
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      if (status(err) === 404) return false;
      throw storeError('DELETE', key, err);
    }
    return true;
  }

  /** Upload a verified artifact create-only; a damaged stored copy (wrong size) is quarantined and replaced. */
  async #store(info: ArtifactInfo, body: Body): Promise<void> {
    const { digest, size } = info;
    const multipart = 'parts' in body;
    let refused = 0;
    for (let attempt = 1; ; attempt++) {
      // Without enforced create-only, a HEAD first; with it, still for big uploads (no point sending
      // gigabytes already there, and multipart completion is not atomically conditional everywhere).
      const before = !this.#conditional || multipart ? await this.#head(digest) : null;
      let stored: Found | null = before;
      if (!before) {
        const created = multipart ? await this.#putParts(digest, body) : await this.#putSingle(digest, body);
        if (created) {
          log.debug(`store: put ${digest} (${size} bytes${multipart ? `, ${body.parts.length} parts` : ''})`);
          return;
        }
        stored = await this.#head(digest); // 412: someone stored it first
        if (!stored) {
          // Removed (quarantined) since: create it. Bounded: a store whose conditional puts
          // refuse yet store nothing would otherwise be asked forever, the build never failing.
          if (++refused >= MAX_REFUSED_PUTS) {
            throw new SnapError(
              'unreachable',
              `object store: PUT ${this.#key(digest)} was refused as already stored ${refused} times, yet the object is not there; if this store does not implement conditional writes, set SNAPCLONE_S3_CONDITIONAL_WRITES=0`,
            );
          }
          await new Promise((r) => setTimeout(r, 50 * 2 ** refused));
          attempt--; // not a damaged copy: does not count towards the replacements below
          continue;
        }
      }
      if (stored!.size === size) return; // same digest and size: the same bytes (reads verify the rest)
      const reason = `stored copy has ${stored!.size} bytes, the artifact has ${size}`;
      if (attempt > 2) throw integrityError(`stored artifact ${digest} is damaged (${reason}) and could not be replaced`);
      await this.quarantine(digest, reason, stored!.copy);
    }
  }

  /** One PUT. False when the store already has the key (412). */
  async #putSingle(digest: string, body: SingleBody): Promise<boolean> {
    const key = this.#key(digest);
    const length = 'bytes' in body ? body.bytes.length : (await body.fh.stat()).size;
    const payload = 'bytes' in body ? body.bytes : fileRange(body.fh, 0, length - 1);
    try {
      await this.#client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: payload,
          ContentLength: length,
          ContentMD5: body.md5,
          ContentType: 'application/octet-stream',
          ...(this.#conditional ? { IfNoneMatch: '*' } : {}),
        }),
      );
      return true;
    } catch (err) {
      if (this.#conditional && (status(err) === 412 || status(err) === 409)) return false;
      throw storeError('PUT', key, err);
    } finally {
      if (!('bytes' in body)) (payload as Readable).destroy();
    }
  }

  /** A multipart upload, parts streamed one at a time from the file (bounded memory), aborted on any failure. */
  async #putParts(digest: string, body: PartsBody): Promise<boolean> {
    const key = this.#key(digest);
    let uploadId: string;
    try {
      const res = await this.#client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ContentType: 'application/octet-stream' }));
      uploadId = res.UploadId!;
    } catch (err) {
      throw storeError('CREATE-MULTIPART', key, err);
    }
    try {
      const done: { ETag: string; PartNumber: number }[] = [];
      for (const [i, p] of body.parts.entries()) {
        const stream = fileRange(body.fh, p.start, p.end);
        try {
          const res = await this.#client.send(
            new UploadPartCommand({
              Bucket: this.bucket,
              Key: key,
              UploadId: uploadId,
              PartNumber: i + 1,
              Body: stream,
              ContentLength: p.end - p.start + 1,
              ContentMD5: body.md5s[i],
            }),
          );
          done.push({ ETag: res.ETag!, PartNumber: i + 1 });
        } finally {
          stream.destroy();
        }
      }
      try {
        await this.#client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: uploadId,
            MultipartUpload: { Parts: done },
            ...(this.#conditional ? { IfNoneMatch: '*' } : {}),
          }),
        );
      } catch (err) {
        if (this.#conditional && (status(err) === 412 || status(err) === 409)) {
          await this.#abort(key, uploadId);
          return false;
        }
        throw err;
      }
      return true;
    } catch (err) {
      await this.#abort(key, uploadId);
      throw storeError('MULTIPART', key, err);
    }
  }

  async #abort(key: string, uploadId: string): Promise<void> {
    await this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId })).catch((err: unknown) => {
      log.warn(`could not abort the multipart upload of ${key}: ${(err as Error).message}`);
    });
  }

  async #get(digest: string, range?: { start: number; end: number }): Promise<{ stream: Readable; copy: StoredCopy }> {
    const key = this.#key(digest);
    let res;
    try {
      res = await this.#client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }),
      );
    } catch (err) {
      if (range && status(err) === 416) throw invalid(`range ${range.start}-${range.end} is outside artifact ${digest}`);
      throw storeError('GET', key, err, digest);
    }
    const stream = res.Body as Readable;
    if (range && !res.ContentRange) {
      stream.destroy();
      throw new SnapError('internal', `the object store ignored the byte range of GET ${key}`);
    }
    return { stream, copy: copyOf(res) };
  }

  #head(digest: string): Promise<Found | null> {
    let p = this.#statting.get(digest);
    if (!p) {
      p = this.#headKey(this.#key(digest)).finally(() => this.#statting.delete(digest));
      this.#statting.set(digest, p);
    }
    return p;
  }

  async #headKey(key: string): Promise<Found | null> {
    try {
      const res = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: res.ContentLength ?? 0, etag: res.ETag ?? '', copy: copyOf(res) };
    } catch (err) {
      if (status(err) === 404) return null;
      throw storeError('HEAD', key, err);
    }
  }

  /** Part boundaries: the whole file, or parts of partSize (more if 10,000 would not hold it). */
  #partsFor(size: number): { start: number; end: number }[] {
    if (size <= this.#threshold) return [{ start: 0, end: size - 1 }];
    const partSize = Math.max(this.#partSize, Math.ceil(size / MAX_PARTS));
    const parts = [];
    for (let start = 0; start < size; start += partSize) parts.push({ start, end: Math.min(size, start + partSize) - 1 });
    return parts;
  }

  #key(digest: string): string {
    return `${this.prefix}sha256/${digest}`;
  }

  #quarantineKey(digest: string): string {
    return `${this.prefix}quarantine/${digest}`;
  }
}

interface Found {
  size: number;
  etag: string;
  copy: StoredCopy;
}

/**
 * Which stored copy this is: its ETag (an MD5 of the bytes put, on most stores) and its
 * time of writing, so a good copy put again over one rotten at rest (same ETag) still differs.
 */
function copyOf(res: { ETag?: string | undefined; LastModified?: Date | undefined }): StoredCopy {
  return `${res.ETag ?? ''}@${res.LastModified?.getTime() ?? 0}`;
}

type SingleBody = { bytes: Uint8Array; md5: string } | { fh: FileHandle; md5: string };
type PartsBody = { fh: FileHandle; parts: { start: number; end: number }[]; md5s: string[] };
type Body = SingleBody | PartsBody;

/** SHA-256 of the whole file and the base64 MD5 of each part, in one read. */
async function hashFile(fh: FileHandle, parts: { start: number; end: number }[]): Promise<{ digest: string; size: number; md5s: string[] }> {
  const sha = createHash('sha256');
  const md5s: string[] = [];
  let md5 = createHash('md5');
  let part = 0;
  let pos = 0;
  for await (const chunk of fileRange(fh, 0, Infinity) as AsyncIterable<Buffer>) {
    sha.update(chunk);
    let off = 0;
    while (off < chunk.length) {
      const partEnd = parts[part]?.end ?? Infinity; // beyond the planned parts: the file grew (caught by the size check)
      const take = Math.min(chunk.length - off, partEnd - pos + 1);
      md5.update(chunk.subarray(off, off + take));
      off += take;
      pos += take;
      if (pos > partEnd) {
        md5s.push(md5.digest('base64'));
        md5 = createHash('md5');
        part++;
      }
    }
  }
  if (md5s.length < parts.length) md5s.push(md5.digest('base64')); // an empty file's one empty part, or a short last one
  return { digest: sha.digest('hex'), size: pos, md5s };
}

/**
 * Bytes [start, end] of an open file as a stream of chunks read at their offsets. Unlike
 * FileHandle.createReadStream, destroying it never closes the file (the next part reads it too).
 */
function fileRange(fh: FileHandle, start: number, end: number): Readable {
  return Readable.from(
    (async function* () {
      for (let pos = start; pos <= end; ) {
        const want = Math.min(READ_CHUNK, end - pos + 1);
        const { bytesRead, buffer } = await fh.read(Buffer.allocUnsafe(want), 0, want, pos);
        if (bytesRead === 0) return; // end of file: a shorter file than planned fails its length or MD5 check
        pos += bytesRead;
        yield buffer.subarray(0, bytesRead);
      }
    })(),
    { objectMode: false },
  );
}

/**
 * The SDK's region chain (AWS_REGION, the profile's region), or `fallback` where it has none
 * (S3-compatible stores mostly ignore the region). Looked up once, on the first request.
 */
function sdkRegionOr(fallback: string): () => Promise<string> {
  let found: Promise<string> | undefined;
  return () =>
    (found ??= (async () => {
      const probe = new S3Client({});
      try {
        return await probe.config.region();
      } catch {
        return fallback;
      } finally {
        probe.destroy();
      }
    })());
}

function status(err: unknown): number | undefined {
  const e = err as { $metadata?: { httpStatusCode?: number }; name?: string } | null;
  if (e?.name === 'NotFound' || e?.name === 'NoSuchKey') return 404;
  if (e?.name === 'PreconditionFailed') return 412;
  return e?.$metadata?.httpStatusCode;
}

/** An S3 failure as a one-line SnapError: a missing artifact, or the store unreachable/refusing (no secrets in either). */
function storeError(op: string, key: string, err: unknown, digest?: string): unknown {
  if (err instanceof SnapError) return err;
  const code = status(err);
  const name = (err as Error | null)?.name ?? 'Error';
  // A 404 for the bucket, not the key: a configuration error, never "this artifact is missing".
  if (name === 'NoSuchBucket') return new SnapError('unreachable', `object store: ${op} ${key} failed: the bucket does not exist (check SNAPCLONE_S3_BUCKET)`, { cause: err });
  if (digest && code === 404) return new SnapError('artifact-missing', `artifact ${digest} is not in the store`, { cause: err });
  const msg = (err as Error | null)?.message ?? String(err);
  return new SnapError('unreachable', `object store: ${op} ${key} failed${code ? ` (${code})` : ''}: ${name}: ${oneLine(msg)}`, { cause: err });
}



function oneLine(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, 500);
}
