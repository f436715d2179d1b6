/** `snapclone worker`: claim and run builds from the shared queue in the foreground until a signal. */
import { SnapError } from '../util/errors.js';
import { zstdLevelFromEnv } from '../util/zstd-level.js';
import type { Values } from './common.js';
import { dataDirOf } from './serve-cmd.js';
import { stopOnSignal } from './signals.js';

export async function worker(v: Values, args: string[]): Promise<number> {
  if (args.length) throw new SnapError('usage', 'worker takes no arguments');
  const concurrency = Number(v.concurrency ?? 1);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new SnapError('usage', '--concurrency must be a positive integer');
  zstdLevelFromEnv(process.env);
  const { leaseMsFromEnv } = await import('../serve/builds.js');
  const leaseMs = leaseMsFromEnv();
  const stopSignal = stopOnSignal('stopping the worker (finishing running builds)');
  const { startWorker } = await import('../serve/worker.js');
  const listen = v.listen === undefined ? undefined : parseListen(String(v.listen));
  const running = await startWorker({
    dataDir: dataDirOf(v),
    concurrency,
    leaseMs,
    ...(listen ? { listen } : {}),
    adminToken: process.env.SNAPCLONE_ADMIN_TOKEN || undefined,
    metricsToken: process.env.SNAPCLONE_METRICS_TOKEN || undefined,
  });
  await stopSignal;
  await running.close().catch(() => {});
  return 0;
}

/** --listen HOST:PORT (or PORT alone, on 127.0.0.1; [::1]:PORT for IPv6). */
function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:(\[[^\]]+\]|[^:]+):)?(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new SnapError('usage', `invalid --listen ${JSON.stringify(text)} (HOST:PORT or PORT)`);
  return { host: m[1] ?? '127.0.0.1', port };
}
