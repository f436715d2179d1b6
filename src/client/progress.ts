/**
 * Progress on a terminal, like git's: one self-overwriting line on stderr,
 * redrawn at most ten times a second; silent when stderr is not a TTY. Notes
 * ("Cloning into 'dir'...") are printed whenever they are enabled, like git's,
 * which prints them to a pipe too unless --quiet.
 */
import { isTerminal, writeErr } from './stdio.js';

export class Progress {
  private readonly enabled: boolean;
  private readonly notes: boolean;
  private last = 0;
  private label = '';
  private lastStatus = '';
  bytesTotal = 0;
  bytesDone = 0;
  filesTotal = 0;
  filesDone = 0;

  constructor(enabled = isTerminal(2), notes = enabled) {
    this.enabled = enabled;
    this.notes = notes;
  }

  /** One line for the record, above the progress line. */
  note(line: string): void {
    if (!this.notes) return;
    writeErr(this.enabled ? `\r\x1b[K${line}\n` : `${line}\n`);
    this.render(true);
  }

  phase(label: string): void {
    this.label = label;
    this.render(true);
  }

  /**
   * A state worth seeing even without a terminal (waiting for a server build):
   * the progress line on a terminal, else one line each time it changes, when
   * notes are on.
   */
  status(line: string): void {
    if (this.enabled) return this.phase(line);
    if (!this.notes || line === this.lastStatus) return;
    this.lastStatus = line;
    writeErr(`${line}\n`);
  }

  addBytes(n: number): void {
    this.bytesDone += n;
    this.render(false);
  }

  addFiles(n: number): void {
    this.filesDone += n;
    this.render(false);
  }

  private render(force: boolean): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.last < 100) return;
    this.last = now;
    const parts = [this.label];
    if (this.bytesTotal) parts.push(`received ${pct(this.bytesDone, this.bytesTotal)} (${mib(this.bytesDone)}/${mib(this.bytesTotal)} MiB)`);
    if (this.filesTotal) parts.push(`files ${pct(this.filesDone, this.filesTotal)} (${this.filesDone}/${this.filesTotal})`);
    writeErr(`\r\x1b[K${parts.filter(Boolean).join(', ')}`);
  }

  done(message: string): void {
    if (!this.enabled) return;
    writeErr(`\r\x1b[K${message}\n`);
  }

  clear(): void {
    if (this.enabled) writeErr('\r\x1b[K');
  }
}

function pct(a: number, b: number): string {
  return `${Math.floor((100 * a) / Math.max(1, b))}%`;
}

function mib(n: number): string {
  return (n / 2 ** 20).toFixed(1);
}
