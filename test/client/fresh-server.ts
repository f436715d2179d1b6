/**
 * Client tests of freshness (issue 7) with real clonepacks: a real snapclone
 * server builds a small upstream, its manifests and artifacts are copied, and a
 * server of our own serves them (and manifests derived from them: shallow,
 * files, several history levels) with whatever resolve and job answers a test
 * scripts: modes, `newer`, 202 with retry hints. Nothing here is shared with
 * other test files (test/client/fake-server.ts serves made-up clonepacks).
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { canonicalJson, parseManifest, manifestArtifacts, type Manifest, type ManifestMode, type PackRef } from '../../src/clonepack/manifest.js';
import { git, gitText } from '../support/git.js';

export function sha256(b: Uint8Array | string): string {
  return createHash('sha256').update(b).digest('hex');
}

export interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** What resolve was asked: the query parameters of each request, in order. */
export interface ResolveCall {
  ref: string | null;
  mode: string | null;
}

export class FreshServer {
  url = '';
  readonly artifacts = new Map<string, Buffer>();
  readonly resolveCalls: ResolveCall[] = [];
  readonly jobCalls: number[] = [];
  /** Digests of the artifacts asked for, in order. */
  readonly artifactCalls: string[] = [];
  /** Artifacts answered only after the given milliseconds (a download still in flight when a clone fails). */
  readonly slow = new Map<string, number>();
  /** Answers resolve; n counts resolve requests from 1. */
  onResolve: (call: ResolveCall, n: number) => Answer = () => ({ status: 404, body: { error: 'no such repo', code: 'not-found' } });
  /** Answers GET /v1/jobs/<id>; n counts requests for that job from 1. */
  onJob: (id: number, n: number) => Answer = () => ({ status: 404, body: { error: 'no such job', code: 'not-found' } });
  private server!: Server;

  static async start(): Promise<FreshServer> {
    const f = new FreshServer();
    f.server = createServer((req, res) => {
      req.resume();
      const url = new URL(req.url ?? '/', 'http://x');
      const send = (a: Answer) => {
        const text = JSON.stringify(a.body);
        res.writeHead(a.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...(a.headers ?? {}) });
        res.end(text);
      };
      let m = /^\/v1\/artifacts\/([0-9a-f]{64})$/.exec(url.pathname);
      if (m && req.method === 'GET') {
        const a = f.artifacts.get(m[1]!);
        f.artifactCalls.push(m[1]!);
        if (!a) return send({ status: 404, body: { error: 'no artifact', code: 'not-found' } });
        const answer = () => {
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': a.length });
          res.end(a);
        };
        const delay = f.slow.get(m[1]!);
        return void (delay ? setTimeout(answer, delay) : answer());
      }
      if (/^\/v1\/repos\/[^/]+\/resolve$/.test(url.pathname)) {
        const call = { ref: url.searchParams.get('ref'), mode: url.searchParams.get('mode') };
        f.resolveCalls.push(call);
        return send(f.onResolve(call, f.resolveCalls.length));
      }
      m = /^\/v1\/jobs\/(\d+)$/.exec(url.pathname);
      if (m) {
        const id = Number(m[1]);
        f.jobCalls.push(id);
        return send(f.onJob(id, f.jobCalls.filter((j) => j === id).length));
      }
      if (/^\/v1\/artifacts\/[^/]+\/report$/.test(url.pathname)) return send({ status: 202, body: {} });
      send({ status: 404, body: { error: 'no route', code: 'not-found' } });
    });
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

  /** Serve a manifest (canonical JSON, not validated) and return its resolve answer body. */
  publish(m: Manifest, upstream: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    const bytes = Buffer.from(canonicalJson(m), 'utf8');
    const digest = sha256(bytes);
    this.artifacts.set(digest, bytes);
    return { repo: 'demo', upstream, ref: m.ref, commit: m.commit, mode: m.mode ?? 'full', manifest: { digest, size: bytes.length }, builtAt: 1_700_000_000, newer: null, ...extra };
  }
}

// ---------------------------------------------------------------------------
// Real clonepacks from a real server

/** GET a JSON answer or bytes from a real server. */
async function get(base: string, path: string): Promise<{ status: number; json: any; bytes: Buffer; headers: IncomingHttpHeaders }> {
  const res = await fetch(base + path);
  const bytes = Buffer.from(await res.arrayBuffer());
  let json: any = null;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    /* bytes */
  }
  return { status: res.status, json, bytes, headers: Object.fromEntries(res.headers) };
}

/**
 * The manifest a real server built for `ref` ('' = default branch), waiting for
 * its build when it answers 202, with every artifact it names copied into `into`.
 */
export async function harvest(base: string, name: string, ref: string, into: Map<string, Buffer>): Promise<Manifest> {
  for (let i = 0; i < 600; i++) {
    const r = await get(base, `/v1/repos/${encodeURIComponent(name)}/resolve?ref=${encodeURIComponent(ref)}`);
    if (r.status === 200) {
      const m = parseManifest((await get(base, `/v1/artifacts/${r.json.manifest.digest}`)).bytes);
      for (const a of manifestArtifacts(m)) {
        const b = await get(base, `/v1/artifacts/${a.digest}`);
        if (b.status !== 200 || sha256(b.bytes) !== a.digest) throw new Error(`cannot copy artifact ${a.digest}`);
        into.set(a.digest, b.bytes);
      }
      return m;
    }
    if (r.status !== 202) throw new Error(`resolve of ${ref || 'HEAD'} answered ${r.status}: ${r.bytes.toString()}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`the real server did not build ${ref || 'HEAD'}`);
}

// ---------------------------------------------------------------------------
// Manifests derived from a real full one, as a server of issue 7 composes them

/**
 * The manifest of an earlier publish step: no history, and (with a commit)
 * `refs` holding only the ref and its followed tags. `emptyArchive` leaves the
 * archive out, as a shallow manifest may when no file is converted.
 */
export function asMode(full: Manifest, mode: ManifestMode, opts: { emptyArchive?: boolean } = {}): Manifest {
  if (mode === 'full') return { ...full, version: 2, mode };
  const keep = new Set([full.ref, ...(full.followedTags ?? [])]);
  return {
    ...full,
    version: 2,
    mode,
    refs: full.commit === null ? full.refs : full.refs.filter((r) => keep.has(r.name)),
    historyPacks: [],
    archive: opts.emptyArchive ? { codec: 'zstd', bytes: 0, chunks: [] } : full.archive,
  };
}

/**
 * Replace a full manifest's history with levels packed by git from `repo`:
 * one pack per entry of `levels`, each the objects of `revs` (rev-list
 * arguments) not in an earlier level. The packs go into `into`.
 */
export function withLevels(full: Manifest, repo: string, levels: string[][], scratch: string, into: Map<string, Buffer>): Manifest {
  mkdirSync(scratch, { recursive: true });
  const packs: PackRef[] = [];
  const earlier: string[] = [];
  levels.forEach((revs, i) => {
    const prefix = join(scratch, `level${i}`);
    const input = [...revs, ...earlier.map((r) => `^${r}`)].join('\n') + '\n';
    const hash = git(['pack-objects', '--revs', '-q', prefix], { cwd: repo, input }).toString().trim();
    const pack = readFileSync(`${prefix}-${hash}.pack`);
    const idx = readFileSync(`${prefix}-${hash}.idx`);
    into.set(sha256(pack), pack);
    into.set(sha256(idx), idx);
    packs.push({ name: `pack-${hash}`, pack: { digest: sha256(pack), size: pack.length }, idx: { digest: sha256(idx), size: idx.length }, objects: pack.readUInt32BE(8) });
    earlier.push(...revs.filter((r) => !r.startsWith('-')));
  });
  return { ...full, version: 2, mode: 'full', historyPacks: packs };
}

// ---------------------------------------------------------------------------
// The upstream

export interface Upstream {
  dir: string;
  url: string;
  /** main's commits, oldest first. */
  commits: string[];
}

/**
 * main: c0 (plain files; annotated tag v1, branch dev), c1 (adds a file git
 * converts on checkout, eol=crlf, and an executable), c2 (changes a file, so
 * history has a delta; annotated tag v2 and a lightweight tag on it).
 */
export function makeFreshUpstream(dir: string): Upstream {
  mkdirSync(dir, { recursive: true });
  const run = (args: string[], date: number) => git(args, { cwd: dir, date });
  run(['init', '-q', '-b', 'main'], 0);
  const write = (p: string, text: string) => {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), text);
  };
  const commits: string[] = [];
  const commit = (msg: string, date: number) => {
    run(['add', '-A'], date);
    run(['commit', '-q', '-m', msg], date);
    commits.push(gitText(['rev-parse', 'HEAD'], { cwd: dir }));
  };
  write('README.md', '# fresh\n');
  write('src/a.txt', 'alpha\n'.repeat(200));
  commit('first', 1_600_000_000);
  run(['tag', '-a', '-m', 'v1', 'v1'], 1_600_000_001);
  run(['branch', 'dev'], 1_600_000_001);
  write('.gitattributes', '*.crlf text eol=crlf\n');
  write('notes/lines.crlf', 'one\ntwo\nthree\n');
  write('bin/run.sh', '#!/bin/sh\necho hi\n');
  chmodSync(join(dir, 'bin/run.sh'), 0o755);
  commit('second', 1_600_000_100);
  write('src/a.txt', 'alpha\n'.repeat(199) + 'omega\n');
  commit('third', 1_600_000_200);
  run(['tag', '-a', '-m', 'v2', 'v2'], 1_600_000_201);
  run(['tag', 'light'], 1_600_000_201);
  return { dir, url: `file://${dir}`, commits };
}
