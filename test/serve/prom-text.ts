/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4) for tests: every
 * line must be a HELP, a TYPE or a sample of a declared family, or parsing throws.
 */

export type Samples = Map<string, number>;

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: -?\\d+)?$`);
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(?:,|$)/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** Samples by key `name{label="value",...}` (labels sorted; `name` alone without labels). */
export function parsePrometheus(text: string): Samples {
  const types = new Map<string, string>();
  const out: Samples = new Map();
  const lines = text.split('\n');
  if (lines.at(-1) !== '') throw new Error('the exposition does not end with a line break');
  for (const line of lines.slice(0, -1)) {
    if (line === '') continue;
    let m = new RegExp(`^# (HELP|TYPE) (${NAME}) (.*)$`).exec(line);
    if (m) {
      if (m[1] === 'TYPE') {
        if (!TYPES.has(m[3]!)) throw new Error(`unknown metric type: ${line}`);
        if (types.has(m[2]!)) throw new Error(`second TYPE for ${m[2]}`);
        types.set(m[2]!, m[3]!);
      }
      continue;
    }
    if (line.startsWith('#')) continue; // a comment
    m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const [, name, labelText, valueText] = m;
    const family = familyOf(name!, types);
    if (!family) throw new Error(`sample of an undeclared family: ${line}`);
    const value = parseValue(valueText!);
    const labels: [string, string][] = [];
    let rest = labelText ?? '';
    while (rest !== '') {
      const l = LABEL.exec(rest);
      if (!l) throw new Error(`bad labels in ${line}`);
      labels.push([l[1]!, l[2]!]);
      rest = rest.slice(l[0].length);
    }
    const key = sampleKey(name!, Object.fromEntries(labels));
    if (out.has(key)) throw new Error(`duplicate sample ${key}`);
    out.set(key, value);
  }
  return out;
}

function familyOf(name: string, types: Map<string, string>): string | null {
  if (types.has(name)) return name;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    const base = name.endsWith(suffix) ? name.slice(0, -suffix.length) : null;
    if (base && (types.get(base) === 'histogram' || types.get(base) === 'summary')) return base;
  }
  return null;
}

/** As Prometheus reads it (Go's ParseFloat: NaN and Inf in any case; prom-client writes "Nan"). */
function parseValue(v: string): number {
  if (/^\+?inf$/i.test(v)) return Infinity;
  if (/^-inf$/i.test(v)) return -Infinity;
  if (/^nan$/i.test(v)) return NaN;
  const n = Number(v);
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v) || !Number.isFinite(n)) throw new Error(`bad sample value ${v}`);
  return n;
}

export function sampleKey(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}="${v}"`);
  return parts.length ? `${name}{${parts.join(',')}}` : name;
}

/** A sample's value, 0 when absent (a labelled counter appears once first incremented). */
export function sample(s: Samples, name: string, labels: Record<string, string> = {}): number {
  return s.get(sampleKey(name, labels)) ?? 0;
}
