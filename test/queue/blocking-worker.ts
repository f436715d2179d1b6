/**
 * A worker process for the SIGKILL test (lease-worker.test.ts): opens the PostgreSQL store,
 * runs runLeaseWorkers with a runner that reports one phase and then blocks forever, and
 * prints "started <job id>" once it holds a job. Its parent kills it with SIGKILL.
 * Usage: node blocking-worker.js <database url> <worker id> <lease ms>
 */
import { PostgresMetadataStore } from '../../src/metadata/postgres/pg-store.js';
import { PgJobQueue } from '../../src/queue/postgres/pg-queue.js';
import { runLeaseWorkers } from '../../src/queue/lease-worker.js';

const [url, workerId, leaseMs] = process.argv.slice(2);
if (!url || !workerId || !leaseMs) throw new Error('usage: blocking-worker.js <database url> <worker id> <lease ms>');
const store = await PostgresMetadataStore.open(url);
const queue = new PgJobQueue(store);
runLeaseWorkers({
  queue,
  workerId,
  leaseMs: Number(leaseMs),
  pollMs: 100,
  runner: async (job, report) => {
    report('fetching');
    process.stdout.write(`started ${job.id}\n`);
    await new Promise(() => {}); // blocks until killed
    return { commit: null };
  },
});
// Keep the process alive while the runner blocks (a pending promise alone does not).
setInterval(() => {}, 60_000);
