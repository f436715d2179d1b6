/**
 * One-frame zstd decompression, the implementation picked at run time: Bun's
 * built-in `Bun.zstdDecompressSync` under Bun (no native addon to load: the
 * zstd-napi addon costs ~30-40 ms there), zstd-napi under Node. Callers check
 * first that the input is exactly one frame declaring the size the manifest
 * promised (zstd-frame.ts): both decoders then allocate that size and refuse a
 * frame whose content does not match its header (checked: a lowered declared
 * size fails in both), so a bomb cannot get past them.
 */
export type Decompress = (frame: Uint8Array) => Buffer;

interface BunZstd {
  zstdDecompressSync(data: Uint8Array): Uint8Array;
}

let loaded: Promise<Decompress> | null = null;

/** The decompressor, loaded on first use (zstd-napi keeps one context per thread, reused). */
export function loadZstd(): Promise<Decompress> {
  loaded ??= (async (): Promise<Decompress> => {
    const bun = (globalThis as { Bun?: Partial<BunZstd> }).Bun;
    if (typeof bun?.zstdDecompressSync === 'function' && process.env.SNAPCLONE_ZSTD !== 'napi') {
      const z = bun.zstdDecompressSync.bind(bun);
      return (frame) => {
        const out = z(frame);
        return Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength);
      };
    }
    const dctx = new (await import('zstd-napi')).Decompressor();
    return (frame) => dctx.decompress(frame);
  })();
  return loaded;
}
