/**
 * Argument parsing for the CLI: node:util's parseArgs, except that plain
 * argument lists (known `--long`, `--long=value`, `--long value`, `-x`,
 * `-x value`, positionals) are parsed here without it. Under Bun, node:util is
 * a JavaScript module that takes ~3 ms to load, a sixth of a clone's start-up
 * budget. Anything else (unknown or grouped options, `--`, values that begin
 * with `-`, a boolean given a value) goes to parseArgs, so its errors and its
 * corner cases stay exactly its own.
 */
import type { ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;
export type Parsed = { values: Record<string, string | boolean | undefined>; positionals: string[] };

/** Simple lists here, the rest by parseArgs (strict, positionals allowed). */
export async function parseCommandArgs(args: string[], options: Options): Promise<Parsed> {
  return parsePlain(args, options) ?? ((await import('node:util')).parseArgs({ args, options, allowPositionals: true, strict: true }) as Parsed);
}

/** The parse of a plain list, as parseArgs would give it; null for anything that is not plain. */
export function parsePlain(args: string[], options: Options): Parsed | null {
  const values: Parsed['values'] = {};
  const positionals: string[] = [];
  const shorts = new Map<string, string>();
  for (const [name, o] of Object.entries(options)) if (o.short) shorts.set(o.short, name);
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('-') || a === '-') {
      positionals.push(a);
      continue;
    }
    let name: string | undefined;
    let inline: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      if (eq >= 0) inline = a.slice(eq + 1);
    } else if (a.length === 2) name = shorts.get(a[1]!);
    if (!name || !Object.hasOwn(options, name)) return null;
    const o = options[name]!;
    if (o.multiple || o.default !== undefined) return null;
    if (o.type === 'boolean') {
      if (inline !== undefined) return null;
      values[name] = true;
    } else if (inline !== undefined) values[name] = inline;
    else {
      const v = args[i + 1];
      if (v === undefined || v.startsWith('-')) return null;
      values[name] = v;
      i++;
    }
  }
  return { values, positionals };
}
