/**
 * Server logging: one JSON line per event on stderr (pino), e.g.
 *   {"level":"info","time":"2025-01-01T00:00:00.000Z","pid":1,"hostname":"h","reqId":"..","msg":"GET /healthz 200 15 B 1 ms"}
 * Credentials are redacted from messages and fields (URLs' passwords and secret query
 * parameters, fields named like authorization/token/secret), and messages are one printable
 * line (nothing a client or upstream sends can forge a line or hide in control characters).
 * SNAPCLONE_LOG=debug adds detail (causes' stacks, git commands, store writes, job phases);
 * SNAPCLONE_LOG=warn keeps only problems. Server-side only: the CLI client never loads this
 * module (it prints its own one-line messages), so pino stays off its start-up path.
 */
import { hostname } from 'node:os';
import { pino } from 'pino';
import { redactUrl } from './redact.js';

const LEVELS = { debug: 0, info: 1, warn: 2, error: 3 } as const;
type Level = keyof typeof LEVELS;

/** Structured context for a line (request id, status, ...). Values named like credentials are censored. */
export type LogFields = Record<string, unknown>;

const CENSORED = '***';

/** Field names that carry credentials wherever they appear. */
const SECRET_NAME = /token|secret|passw|pwd|authorization|cookie|credential|signature|session|api.?key|access.?key/i;
/** The same names for pino's own redaction (exact paths, top level and one level down): a second net. */
const REDACT_PATHS = [
  'authorization',
  'token',
  'secret',
  'password',
  'cookie',
  'headers.authorization',
  'headers.cookie',
  // A caller's own upstream credential (serve/access/upstream-auth.ts).
  'headers["snapclone-upstream-authorization"]',
].flatMap((p) => (p.includes('.') || p.includes('[') ? [p] : [p, `*.${p}`]));

/**
 * Read on every call, not once: tests (and embedders) set SNAPCLONE_LOG after this module
 * has loaded.
 */
function threshold(): number {
  const v = process.env.SNAPCLONE_LOG as Level | undefined;
  return v && v in LEVELS ? LEVELS[v] : LEVELS.info;
}

/** Text as one printable line: line breaks become " / ", other control characters (NUL, ESC...) go. */
export function oneLine(text: string): string {
  return text
    .split(/\r?\n|\r/)
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join(' / ')
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, '');
}

// Written through process.stderr (not pino's own fd writer) so whoever owns stderr (a test's
// capture, the CLI's EPIPE handling) sees every line. Filtering is ours (threshold()), so pino
// is set to pass everything.
const logger = pino(
  {
    level: 'debug',
    base: { pid: process.pid, hostname: hostname() },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACT_PATHS, censor: CENSORED },
  },
  process.stderr,
);

/** Fields with credentials censored and every string redacted and made one line (a few levels deep). */
function cleanFields(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return oneLine(redactUrl(value));
  if (value === null || typeof value !== 'object' || depth > 4) return value;
  if (Array.isArray(value)) return value.map((v) => cleanFields(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_NAME.test(k) && v !== null && v !== undefined ? CENSORED : cleanFields(v, depth + 1);
  return out;
}

function line(level: Level, msg: string, fields?: LogFields): void {
  if (LEVELS[level] < threshold()) return;
  const text = oneLine(redactUrl(msg));
  if (fields) logger[level](cleanFields(fields) as object, text);
  else logger[level](text);
}

/** An error as a log field: its name, message, stack frames and causes (redacted like any field). */
function errorField(err: Error, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {
    type: err.name,
    message: err.message,
    stack: (err.stack ?? '').split('\n').slice(1).map((f) => f.trim()).filter((f) => f !== ''),
  };
  const code = (err as NodeJS.ErrnoException).code;
  if (code) out.code = code;
  if (err.cause instanceof Error && depth < 5) out.cause = errorField(err.cause, depth + 1);
  return out;
}

export const log = {
  debug: (msg: string, fields?: LogFields) => line('debug', msg, fields),
  info: (msg: string, fields?: LogFields) => line('info', msg, fields),
  warn: (msg: string, fields?: LogFields) => line('warn', msg, fields),
  error: (msg: string, fields?: LogFields) => line('error', msg, fields),
  enabled: (level: Level) => LEVELS[level] >= threshold(),
  /** A failure's stack and causes, as one debug line (the message itself was logged at its own level). */
  stack(err: unknown, fields?: LogFields): void {
    if (!log.enabled('debug') || !(err instanceof Error) || !err.stack) return;
    line('debug', `stack of ${err.name}: ${err.message}`, { ...fields, err: errorField(err) });
  },
};
