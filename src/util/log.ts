/**
 * Server logging: one line per event on stderr, credentials redacted, control
 * characters removed (so nothing a client or upstream sends can forge a line).
 * SNAPCLONE_LOG=debug adds detail (requests' causes' stacks, git commands,
 * store writes, job phases); SNAPCLONE_LOG=warn keeps only problems.
 */
import { redactUrl } from './redact.js';

const LEVELS = { debug: 0, info: 1, warn: 2, error: 3 } as const;
type Level = keyof typeof LEVELS;

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

function line(level: Level, msg: string): void {
  if (LEVELS[level] < threshold()) return;
  process.stderr.write(`${new Date().toISOString()} ${level} ${oneLine(redactUrl(msg))}\n`);
}

export const log = {
  debug: (msg: string) => line('debug', msg),
  info: (msg: string) => line('info', msg),
  warn: (msg: string) => line('warn', msg),
  error: (msg: string) => line('error', msg),
  enabled: (level: Level) => LEVELS[level] >= threshold(),
  /** A failure's stack, one debug line per frame (the message itself was logged at its own level). */
  stack(err: unknown): void {
    if (!log.enabled('debug') || !(err instanceof Error) || !err.stack) return;
    for (const frame of err.stack.split('\n').slice(1)) line('debug', `  ${frame.trim()}`);
    if (err.cause instanceof Error) {
      line('debug', `  caused by: ${err.cause.message}`);
      log.stack(err.cause);
    }
  },
};
