/** Small HTTP helpers for the API: JSON bodies, errors as JSON, status mapping. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SnapError, type ErrorCode } from '../util/errors.js';
import { log, type LogFields } from '../util/log.js';
import { recordError } from './metrics.js';

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

/** Request ids by request (set by the request log, server.ts), for the lines logged about a request. */
const requestIds = new WeakMap<IncomingMessage, string>();

export function setRequestId(req: IncomingMessage, id: string): void {
  requestIds.set(req, id);
}

export function requestIdOf(req: IncomingMessage | undefined): string | undefined {
  return req ? requestIds.get(req) : undefined;
}

/** Log fields naming the request a response answers (its id), if it has one. */
function requestFields(res: ServerResponse): LogFields | undefined {
  const reqId = requestIdOf(res.req as IncomingMessage | undefined);
  return reqId ? { reqId } : undefined;
}

/** Send a JSON body; an error body (status >= 400 with a "code") is counted by its code in /metrics. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (status >= 400 && typeof (body as { code?: unknown } | null)?.code === 'string') recordError((body as { code: string }).code);
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/**
 * Answer a failed request. Before the headers are out: a JSON error, and a 5xx
 * is logged with its cause (stack at debug), since only the log can tell the
 * operator what broke. After them (a stream failed mid-body) nothing valid can
 * be said, so the connection is cut, and that is logged too: the client sees
 * only a short body or an empty reply.
 */
export function sendError(res: ServerResponse, err: unknown): void {
  const what = requestLabel(res);
  const fields = requestFields(res);
  if (res.headersSent) {
    if (clientWentAway(res, err)) {
      // Not our failure: a client that cancels (Ctrl-C, a timeout) closes its socket mid-body.
      log.debug(`${what}: client closed the connection: ${causeText(err)}`, fields);
      res.destroy();
      return;
    }
    recordError('aborted');
    log.error(`${what}: response aborted after its headers were sent: ${causeText(err)}`, fields);
    log.stack(err, fields);
    res.destroy();
    return;
  }
  const status = err instanceof SnapError ? (STATUS[err.code] ?? 500) : 500;
  if (status >= 500) {
    log.error(`${what}: ${status}: ${causeText(err)}`, fields);
    log.stack(err, fields);
  }
  if (err instanceof SnapError) {
    sendJson(res, status, { error: err.message, code: err.code });
  } else {
    sendJson(res, 500, { error: 'internal server error', code: 'internal' });
  }
}

/** "GET /v1/artifacts/ab..." for log lines (query string secrets are redacted by the logger). */
export function requestLabel(res: ServerResponse): string {
  const req = res.req as IncomingMessage | undefined;
  return `${req?.method ?? '?'} ${req?.url ?? '?'}`;
}

const CLIENT_GONE = new Set(['ERR_STREAM_PREMATURE_CLOSE', 'ECONNRESET', 'EPIPE', 'ERR_STREAM_DESTROYED']);

function clientWentAway(res: ServerResponse, err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return (res.destroyed || res.socket?.destroyed === true) && code !== undefined && CLIENT_GONE.has(code);
}

function causeText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return `${err.name === 'Error' || err.name === 'SnapError' ? '' : `${err.name}: `}${err.message}${code && !err.message.includes(code) ? ` (${code})` : ''}`;
  }
  return String(err);
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
  return parseJsonObject(Buffer.concat(parts), 'request body');
}

/** A JSON object from raw bytes, or an `invalid` error naming `what`. */
export function parseJsonObject(buf: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(buf.toString('utf8'));
  } catch {
    throw new SnapError('invalid', `${what} is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SnapError('invalid', `${what} must be a JSON object`);
  return value as Record<string, unknown>;
}
