/** Small HTTP helpers for the API: JSON bodies, errors as JSON, status mapping. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SnapError, type ErrorCode } from '../util/errors.js';

const STATUS: Partial<Record<ErrorCode, number>> = {
  usage: 400,
  invalid: 400,
  'not-found': 404,
  conflict: 409,
  unauthorized: 401,
  unreachable: 502,
  'build-failed': 500,
  integrity: 500,
  timeout: 504,
  'artifact-missing': 404,
  'rate-limited': 429,
  locked: 503,
};

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

export function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err instanceof SnapError) {
    sendJson(res, STATUS[err.code] ?? 500, { error: err.message, code: err.code });
  } else {
    sendJson(res, 500, { error: 'internal server error', code: 'internal' });
  }
}

export async function readJson(req: IncomingMessage, limit = 64 * 1024): Promise<Record<string, unknown>> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new SnapError('invalid', 'request body too large');
    parts.push(chunk);
  }
  if (size === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    throw new SnapError('invalid', 'request body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SnapError('invalid', 'request body must be a JSON object');
  return value as Record<string, unknown>;
}
