/**
 * Reading the server's JSON log lines in tests: parse them, or render them as the
 * "<time> <level> <message>" text tests match with regular expressions.
 */

export interface LogLine {
  level: string;
  time: string;
  msg: string;
  [field: string]: unknown;
}

/**
 * Every line of `raw` (stderr output) that is a JSON log line, parsed; other lines (the CLI's own
 * messages, runtime warnings) are left out, or with `strict` make it throw.
 */
export function logLines(raw: string | string[], strict = false): LogLine[] {
  const text = Array.isArray(raw) ? raw.join('') : raw;
  const out: LogLine[] = [];
  for (const l of text.split('\n')) {
    if (l === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(l);
    } catch {
      if (strict) throw new Error(`not a JSON log line: ${JSON.stringify(l)}`);
      continue;
    }
    const rec = v as Partial<LogLine> | null;
    if (!rec || typeof rec !== 'object' || typeof rec.level !== 'string' || typeof rec.msg !== 'string' || typeof rec.time !== 'string') {
      if (strict) throw new Error(`not a log record: ${l}`);
      continue;
    }
    out.push(rec as LogLine);
  }
  return out;
}

/** The log as "<time> <level> <message>" lines (non-JSON lines kept as they are). */
export function logText(raw: string | string[]): string {
  const text = Array.isArray(raw) ? raw.join('') : raw;
  return text
    .split('\n')
    .map((l) => {
      const [rec] = logLines(l);
      return rec ? `${rec.time} ${rec.level} ${rec.msg}` : l;
    })
    .join('\n');
}
