/**
 * The garbage collection endpoints (admin only):
 *   POST /v1/gc {dryRun?: boolean}  run a pass now → its report (serve/gc/collector.ts GcReport)
 *   GET  /v1/gc                      the last pass's report and what is unreachable now
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SnapError, invalid } from '../util/errors.js';
import { readJson, sendJson } from './http-util.js';
import type { GarbageCollector } from './gc/collector.js';

/** Handles /v1/gc; false when the request is not one of its routes. */
export async function routeGc(
  gc: GarbageCollector,
  isAdmin: boolean,
  method: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<boolean> {
  if (method !== 'GET' && method !== 'POST') return false;
  if (!isAdmin) throw new SnapError('unauthorized', 'this endpoint needs the admin token (Authorization: Bearer ...)');
  if (method === 'POST') {
    const body = await readJson(req);
    if (body.dryRun !== undefined && typeof body.dryRun !== 'boolean') throw invalid('dryRun must be true or false');
    sendJson(res, 200, await gc.run({ dryRun: body.dryRun === true }));
    return true;
  }
  const [last, pending] = await Promise.all([gc.meta.gcLastReport(), gc.pending()]);
  sendJson(res, 200, { last, ...pending, retain: gc.options.retain, graceSeconds: gc.options.graceMs / 1000 });
  return true;
}
