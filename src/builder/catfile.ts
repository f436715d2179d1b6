/**
 * Stream many blobs out of a repository with one `git cat-file --batch`
 * process. Requests are pipelined (all object ids are written while the answers
 * are read), and each object's content is delivered in pieces, so a large blob
 * is never held in memory whole.
 */
import { spawn } from 'node:child_process';
import { gitEnv } from './gitproc.js';
import { SnapError } from '../util/errors.js';

export interface BlobSink {
  start(index: number, size: number): void;
  data(piece: Buffer): void | Promise<void>;
  end(index: number): void | Promise<void>;
}

export async function streamObjects(repoDir: string, oids: readonly string[], sink: BlobSink): Promise<void> {
  if (oids.length === 0) return;
  const child = spawn('git', ['cat-file', '--batch'], { cwd: repoDir, env: gitEnv('hermetic'), stdio: ['pipe', 'pipe', 'pipe'] });
  const stderr: Buffer[] = [];
  child.stderr.on('data', (b: Buffer) => stderr.push(b));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  child.stdin.on('error', () => {});

  // Writer: feed ids with backpressure.
  const writer = (async () => {
    const batch = 4096;
    for (let i = 0; i < oids.length; i += batch) {
      const text = oids.slice(i, i + batch).join('\n') + '\n';
      if (!child.stdin.write(text)) await new Promise((r) => child.stdin.once('drain', r));
    }
    child.stdin.end();
  })();

  let index = 0;
  let header: Buffer | null = null; // partial header line
  let remaining = -1; // content bytes left in the current object; -1 = expecting a header
  let needLf = false;
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      let at = 0;
      while (at < chunk.length) {
        if (needLf) {
          at++; // the LF after each object's content
          needLf = false;
          continue;
        }
        if (remaining < 0) {
          const nl = chunk.indexOf(0x0a, at);
          const part = chunk.subarray(at, nl === -1 ? chunk.length : nl);
          header = header ? Buffer.concat([header, part]) : Buffer.from(part);
          if (nl === -1) break;
          at = nl + 1;
          const line = header.toString('latin1');
          header = null;
          const m = /^([0-9a-f]{40}) (\w+) (\d+)$/.exec(line);
          if (!m || m[1] !== oids[index]) throw new SnapError('build-failed', `cat-file: unexpected answer ${JSON.stringify(line)} for ${oids[index]}`);
          remaining = Number(m[3]);
          sink.start(index, remaining);
          if (remaining === 0) {
            await sink.end(index++);
            remaining = -1;
            needLf = true;
          }
          continue;
        }
        const take = Math.min(remaining, chunk.length - at);
        await sink.data(chunk.subarray(at, at + take));
        at += take;
        remaining -= take;
        if (remaining === 0) {
          await sink.end(index++);
          remaining = -1;
          needLf = true;
        }
      }
    }
  } finally {
    if (index < oids.length) child.kill();
  }
  await writer;
  const code = await exited;
  if (code !== 0 || index !== oids.length)
    throw new SnapError('build-failed', `git cat-file failed: ${Buffer.concat(stderr).toString().trim() || `read ${index} of ${oids.length} objects`}`);
}

/** Read whole objects (for small sets). */
export async function readObjects(repoDir: string, oids: readonly string[]): Promise<Buffer[]> {
  const out: Buffer[] = new Array(oids.length);
  let parts: Buffer[] = [];
  await streamObjects(repoDir, oids, {
    start: () => {
      parts = [];
    },
    data: (p) => {
      parts.push(Buffer.from(p));
    },
    end: (i) => {
      out[i] = Buffer.concat(parts);
    },
  });
  return out;
}
