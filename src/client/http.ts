/**
 * Talking to a snapclone server: JSON calls and verified artifact downloads
 * over one keep-alive connection pool (undici's request API costs about half
 * the CPU of fetch). Every artifact is hashed as it streams in and refused if
 * its SHA-256 or size differs from what the manifest promised; transport
 * failures are retried, integrity failures are not.
 */
import { Agent, request, type Dispatcher } from 'undici';
import { createHash } from 'node:crypto';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { SnapError, integrityError } from '../util/errors.js';

export interface Artifact {
  digest: string;
  size: number;
}

export class ServerClient {
  readonly base: string;
  private readonly agent: Agent;
  private readonly token: string | undefined;

  constructor(serverUrl: string, opts: { connections?: number; token?: string | undefined } = {}) {
    let u: URL;
    try {
      u = new URL(serverUrl);
    } catch {
      throw new SnapError('usage', `invalid server URL ${JSON.stringify(serverUrl)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new SnapError('usage', `server URL must be http:// or https://`);
    this.base = serverUrl.replace(/\/+$/, '');
    this.agent = new Agent({ connections: opts.connections ?? 8, keepAliveTimeout: 10_000, pipelining: 1 });
    this.token = opts.token;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  private async call(method: Dispatcher.HttpMethod, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(this.base + path, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        dispatcher: this.agent,
        headersTimeout: 120_000,
        bodyTimeout: 120_000,
      });
    } catch (err) {
      throw new SnapError('unreachable', `cannot reach snapclone server at ${this.base}: ${(err as Error).message}`);
    }
    const text = await res.body.text();
    let json: Record<string, unknown> = {};
    try {
      json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      throw new SnapError('internal', `server answered ${res.statusCode} with non-JSON body`);
    }
    return { status: res.statusCode, json };
  }

  /** JSON call that turns error statuses into SnapErrors carrying the server's code and message. */
  async json(method: Dispatcher.HttpMethod, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const r = await this.call(method, path, body);
    if (r.status >= 400) {
      const code = typeof r.json.code === 'string' ? r.json.code : 'internal';
      const msg = typeof r.json.error === 'string' ? r.json.error : `server answered ${r.status}`;
      throw new SnapError(mapCode(code), msg);
    }
    return r;
  }

  /**
   * Download one artifact, verifying size and SHA-256. With `toFile`, bytes are
   * written to that path as they arrive (bounded memory); otherwise returned.
   */
  async download(a: Artifact, opts: { toFile?: string; onBytes?: (n: number) => void } = {}): Promise<Buffer | null> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.downloadOnce(a, opts);
      } catch (err) {
        const retryable = !(err instanceof SnapError && (err.code === 'integrity' || err.code === 'not-found'));
        if (!retryable || attempt >= 3) throw err;
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  }

  private async downloadOnce(a: Artifact, opts: { toFile?: string; onBytes?: (n: number) => void }): Promise<Buffer | null> {
    if (opts.toFile) rmSync(opts.toFile, { force: true }); // a retry starts over
    const res = await request(`${this.base}/v1/artifacts/${a.digest}`, { dispatcher: this.agent, headersTimeout: 120_000, bodyTimeout: 120_000 }).catch(
      (err: Error) => {
        throw new SnapError('unreachable', `download of ${a.digest.slice(0, 12)} failed: ${err.message}`);
      },
    );
    if (res.statusCode === 404) {
      await res.body.dump();
      throw new SnapError('not-found', `artifact ${a.digest} is missing on the server`);
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new SnapError('unreachable', `artifact ${a.digest.slice(0, 12)}: server answered ${res.statusCode}`);
    }
    const hash = createHash('sha256');
    let got = 0;
    const fd = opts.toFile ? openSync(opts.toFile, 'w', 0o444) : -1;
    const parts: Buffer[] = [];
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        got += chunk.length;
        if (got > a.size) {
          res.body.destroy();
          throw integrityError(`artifact ${a.digest.slice(0, 12)} is larger than the ${a.size} bytes the manifest names`);
        }
        hash.update(chunk);
        if (fd >= 0) {
          for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off);
        } else {
          parts.push(chunk);
        }
        opts.onBytes?.(chunk.length);
      }
    } finally {
      if (fd >= 0) closeSync(fd);
    }
    if (got !== a.size) throw new SnapError('unreachable', `artifact ${a.digest.slice(0, 12)} ended after ${got} of ${a.size} bytes`);
    if (hash.digest('hex') !== a.digest) throw integrityError(`artifact ${a.digest.slice(0, 12)} does not match its SHA-256 digest`);
    return fd >= 0 ? null : Buffer.concat(parts, got);
  }
}

function mapCode(code: string): SnapError['code'] {
  const known = ['usage', 'not-found', 'unreachable', 'build-failed', 'integrity', 'invalid', 'target-exists', 'conflict', 'unauthorized', 'timeout'];
  return (known.includes(code) ? code : 'internal') as SnapError['code'];
}
