/** Server logging: one line per event on stderr, credentials redacted. */
import { redactUrl } from './redact.js';

const debugOn = process.env.SNAPCLONE_LOG === 'debug';

function line(level: string, msg: string): void {
  process.stderr.write(`${new Date().toISOString()} ${level} ${redactUrl(msg)}\n`);
}

export const log = {
  info: (msg: string) => line('info', msg),
  warn: (msg: string) => line('warn', msg),
  error: (msg: string) => line('error', msg),
  debug: (msg: string) => {
    if (debugOn) line('debug', msg);
  },
};
