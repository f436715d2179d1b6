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
  const running = await startWorker({ dataDir: dataDirOf(v), concurrency, leaseMs });
  await stopSignal;
  await running.close().catch(() => {});
  return 0;
}
