/**
 * A tiny snapclone server of our own for client tests: it speaks the resolve,
 * jobs and artifacts endpoints the client uses (src/client/resolve.ts and
 * http.ts) and serves whatever bytes a test hands it, including wrong ones.
 * Clonepacks are made with the real encoders (encodeTable, encodeManifest or
 * canonicalJson for deliberately invalid manifests, zstd-napi).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { compress } from 'zstd-napi';
import { encodeTable, MODE_FILE, MODE_GITLINK, NO_PACK, type TableEntry } from '../../src/clonepack/filetable.js';
import { canonicalJson, type ChunkRef, type Manifest } from '../../src/clonepack/manifest.js';

export function sha256(b: Uint8Array | string): string {
  return createHash('sha256').update(b).digest('hex');
}

export type ArtifactHandler = (req: IncomingMessage, res: ServerResponse, attempt: number) => void;

export class FakeServer {
  url = '';
  readonly artifacts = new Map<string, Buffer | ArtifactHandler>();
  /** Requests received, as "METHOD path". */
  readonly requests: string[] = [];
  resolveAnswer: { status: number; body: unknown } = { status: 404, body: { error: 'no such repo', code: 'not-found' } };
  /** When set, answers resolve requests instead of resolveAnswer. */
  resolveHandler: ArtifactHandler | null = null;
  readonly jobs = new Map<number, unknown>();
  private server!: Server;

  static async start(): Promise<FakeServer> {
    const f = new FakeServer();
    f.server = createServer((req, res) => f.handle(req, res));
    await new Promise<void>((resolve) => f.server.listen(0, '127.0.0.1', resolve));
    f.url = `http://127.0.0.1:${(f.server.address() as AddressInfo).port}`;
    return f;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** How many times an artifact was asked for. */
  hits(digest: string): number {
    return this.requests.filter((r) => r === `GET /v1/artifacts/${digest}`).length;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    this.requests.push(`${req.method} ${path}`);
    req.resume();
    const json = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    let m = /^\/v1\/artifacts\/([^/]+)$/.exec(path);
    if (m) {
      const a = this.artifacts.get(m[1]!);
      if (a === undefined) return json(404, { error: 'no artifact', code: 'not-found' });
      if (typeof a === 'function') return a(req, res, this.hits(m[1]!));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': a.length });
      return void res.end(a);
    }
    if (/^\/v1\/repos\/[^/]+\/resolve$/.test(path)) {
      if (this.resolveHandler) return this.resolveHandler(req, res, this.requests.filter((r) => r.endsWith('/resolve')).length);
      return json(this.resolveAnswer.status, this.resolveAnswer.body);
    }
    m = /^\/v1\/jobs\/(\d+)$/.exec(path);
    if (m && this.jobs.has(Number(m[1]))) return json(200, this.jobs.get(Number(m[1])));
    json(404, { error: 'no route', code: 'not-found' });
  }
}

export interface FileSpec {
  path: string | Buffer;
  mode?: number;
  content?: string | Buffer;
}

export interface Clonepack {
  manifest: Manifest;
  table: TableEntry[];
  /** Every artifact but the manifest, by digest. */
  artifacts: Map<string, Buffer>;
  tableDigest: string;
  chunkDigests: string[];
}

export const COMMIT = 'c0ffee'.padEnd(40, '0');
export const PACK_NAME = `pack-${'1'.repeat(40)}`;

function blobOid(content: Buffer): Buffer {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest();
}

/**
 * Make a files-mode clonepack from entries in the given order (callers order
 * them, so hostile orders are possible). Every content entry names HEAD pack 0,
 * which files mode never downloads.
 */
export function makeClonepack(files: FileSpec[], opts: { chunkRawBytes?: number; entryOverrides?: Partial<TableEntry>[] } = {}): Clonepack {
  const table: TableEntry[] = files.map((f, i) => {
    const mode = f.mode ?? MODE_FILE;
    const content = Buffer.from(f.content ?? '');
    const gitlink = mode === MODE_GITLINK;
    return {
      path: Buffer.from(f.path),
      mode,
      oid: gitlink ? Buffer.alloc(20, 0x5a) : blobOid(content),
      size: gitlink ? 0 : content.length,
      flags: 0,
      pack: gitlink ? NO_PACK : 0,
      packOffset: gitlink ? 0 : 12 + i * 100,
      packLength: gitlink ? 0 : 50,
      ...(opts.entryOverrides?.[i] ?? {}),
    };
  });
  const stream = Buffer.concat(files.filter((f) => (f.mode ?? MODE_FILE) !== MODE_GITLINK).map((f) => Buffer.from(f.content ?? '')));
  const chunkRaw = opts.chunkRawBytes ?? 1 << 20;
  const artifacts = new Map<string, Buffer>();
  const chunks: ChunkRef[] = [];
  for (let at = 0; at < stream.length; at += chunkRaw) {
    const raw = stream.subarray(at, Math.min(stream.length, at + chunkRaw));
    const z = compress(raw);
    artifacts.set(sha256(z), z);
    chunks.push({ digest: sha256(z), size: z.length, rawSize: raw.length });
  }
  const tableRaw = encodeTable(table);
  const tableZ = compress(tableRaw);
  artifacts.set(sha256(tableZ), tableZ);
  const manifest: Manifest = {
    format: 'snapclone.manifest',
    version: 1,
    ref: 'refs/heads/main',
    commit: COMMIT,
    defaultBranch: 'main',
    refs: [{ name: 'refs/heads/main', oid: COMMIT }],
    headPacks: [{ name: PACK_NAME, pack: { digest: sha256('no such pack'), size: 100 }, idx: { digest: sha256('no such idx'), size: 100 }, objects: table.length }],
    historyPacks: [{ name: `pack-${'2'.repeat(40)}`, pack: { digest: sha256('no such history pack'), size: 100 }, idx: { digest: sha256('no such history idx'), size: 100 }, objects: 1 }],
    table: { digest: sha256(tableZ), size: tableZ.length, entries: table.length, rawSize: tableRaw.length },
    archive: { codec: 'zstd', bytes: stream.length, chunks },
  };
  return { manifest, table, artifacts, tableDigest: sha256(tableZ), chunkDigests: chunks.map((c) => c.digest) };
}

/**
 * Serve a clonepack: its artifacts, its manifest (canonical JSON, not validated,
 * so invalid manifests can be served) and a resolve answer naming it.
 */
export function publish(server: FakeServer, pack: { manifest: unknown; artifacts?: Map<string, Buffer> }, resolveOverride: Record<string, unknown> = {}): { digest: string; bytes: Buffer } {
  for (const [d, b] of pack.artifacts ?? []) server.artifacts.set(d, b);
  const bytes = Buffer.from(canonicalJson(pack.manifest), 'utf8');
  const digest = sha256(bytes);
  server.artifacts.set(digest, bytes);
  const m = pack.manifest as { ref?: unknown; commit?: unknown };
  server.resolveAnswer = {
    status: 200,
    body: {
      repo: 'demo',
      upstream: 'https://example.invalid/demo.git',
      ref: m.ref,
      commit: m.commit,
      manifest: { digest, size: bytes.length },
      ...resolveOverride,
    },
  };
  return { digest, bytes };
}

/** A temp dir tree for one clone: root/parent/target, root/outside. */
export function cloneDirs(): { root: string; parent: string; target: string; outside: string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'snapclone-client-'));
  const parent = join(root, 'parent');
  const outside = join(root, 'outside');
  return {
    root,
    parent,
    target: join(parent, 'target'),
    outside,
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** Staging directories a clone into `parent/<base>` would leave behind. */
export function leftovers(parent: string, base = 'target'): string[] {
  if (!existsSync(parent)) return [];
  return readdirSync(parent).filter((n) => n.startsWith(`.${base}.snapclone-`));
}
