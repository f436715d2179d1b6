/**
 * Server logging: one line per event on stderr, credentials redacted.
 * SNAPCLONE_LOG=debug adds detail; SNAPCLONE_LOG=warn keeps only problems.
 */
import { redactUrl } from './redact.js';

const LEVELS = { debug: 0, info: 1, warn: 2, error: 3 } as const;
type Level = keyof typeof LEVELS;

function threshold(): number {
  const v = process.env.SNAPCLONE_LOG as Level | undefined;
  return v && v in LEVELS ? LEVELS[v] : LEVELS.info;
}

function line(level: Level, msg: string): void {
  if (LEVELS[level] < threshold()) return;
  process.stderr.write(`${new Date().toISOString()} ${level} ${redactUrl(msg)}\n`);
}

export const log = {
  debug: (msg: string) => line('debug', msg),
  info: (msg: string) => line('info', msg),
  warn: (msg: string) => line('warn', msg),
  error: (msg: string) => line('error', msg),
};
