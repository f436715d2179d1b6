/**
 * PostgreSQL and SeaweedFS together, for the scale-out tests: both started, or
 * the reason the test skips (a missing engine fails instead under
 * SNAPCLONE_REQUIRE_SERVERS=1, as in CI, through the skip helpers).
 */
import { startPostgres, postgresSkipReason, type PostgresServer } from './postgres.js';
import { startSeaweed, WEED_MISSING, type Seaweed } from './seaweed.js';

export async function startSharedEngines(): Promise<{ pg: PostgresServer; weed: Seaweed } | { skip: string }> {
  const skip = postgresSkipReason();
  if (skip) return { skip };
  const weed = await startSeaweed();
  if (!weed) return { skip: WEED_MISSING };
  return { pg: await startPostgres(), weed };
}
