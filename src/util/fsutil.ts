import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';

/** SHA-256 and size of a file, streamed. */
export async function hashFile(path: string): Promise<{ digest: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    h.update(chunk);
    size += chunk.length;
  }
  return { digest: h.digest('hex'), size };
}
