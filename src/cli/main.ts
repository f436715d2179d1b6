/**
 * snapclone command line. Only argument parsing lives here; each command's
 * module is imported when that command runs, so --version and --help start fast.
 */
import type { ParseArgsConfig } from 'node:util';
import { readFileSync } from 'node:fs';
import { SnapError } from '../util/errors.js';
import { fsErrorToSnap } from '../client/fs-errors.js';
import { writeErr } from '../client/stdio.js';
import { HELP, COMMAND_HELP } from './help.js';
import { guardStdio } from './stdio-guard.js';
import { parseCommandArgs } from './args.js';

type Values = Record<string, string | boolean | undefined>;

const COMMON = { server: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } as const;
const QUIET = { quiet: { type: 'boolean', short: 'q' } } as const;
const SPECS: Record<string, ParseArgsConfig['options']> = {
  serve: { host: { type: 'string' }, port: { type: 'string' }, 'data-dir': { type: 'string' }, 'build-concurrency': { type: 'string' }, 'no-builds': { type: 'boolean' }, 'poll-seconds': { type: 'string' }, help: COMMON.help },
  worker: { 'data-dir': { type: 'string' }, concurrency: { type: 'string' }, listen: { type: 'string' }, help: COMMON.help },
  add: { ...COMMON, ...QUIET, name: { type: 'string' }, visibility: { type: 'string' }, 'no-wait': { type: 'boolean' } },
  sync: { ...COMMON, ...QUIET, branch: { type: 'string', short: 'b' }, 'no-wait': { type: 'boolean' } },
  status: { ...COMMON },
  list: { ...COMMON },
  remove: { ...COMMON },
  'set-url': { ...COMMON, ...QUIET, 'no-wait': { type: 'boolean' } },
  gc: { ...COMMON, 'dry-run': { type: 'boolean' } },
  clone: { ...COMMON, ...QUIET, branch: { type: 'string', short: 'b' }, depth: { type: 'string' }, mode: { type: 'string' }, timeout: { type: 'string' }, bench: { type: 'boolean' }, proxy: { type: 'boolean' } },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  // A clone writes through src/client/stdio.ts and never builds the streams (stdio-guard.ts).
  if (cmd !== 'clone') guardStdio();
  // Server commands need Node; on Bun (the launcher's runtime) they become Node in place (runtime.ts).
  if ((cmd === 'serve' || cmd === 'worker') && process.versions.bun !== undefined) (await import('./runtime.js')).becomeNode();
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    const topic = cmd === 'help' ? rest[0] : undefined;
    if (topic !== undefined && !Object.hasOwn(COMMAND_HELP, topic))
      throw new SnapError('usage', `no help for '${topic}': not a command (see snapclone --help)`);
    process.stdout.write(topic ? COMMAND_HELP[topic]! : HELP);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === '--version' || cmd === '-V' || cmd === 'version') {
    process.stdout.write(`snapclone ${version()}\n`);
    return 0;
  }
  const spec = Object.hasOwn(SPECS, cmd) ? SPECS[cmd] : undefined;
  if (!spec) throw new SnapError('usage', `unknown command '${cmd}' (see snapclone --help)`);
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = await parseCommandArgs(rest, spec!);
  } catch (err) {
    throw new SnapError('usage', `${(err as Error).message.split('\n')[0]} (see snapclone help ${cmd})`);
  }
  if (parsed.values.help) {
    guardStdio();
    process.stdout.write(COMMAND_HELP[cmd]!);
    return 0;
  }
  const commands = await import('./commands.js');
  return commands.run(cmd, parsed.values, parsed.positionals);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // One line on stderr, never a stack trace, unless SNAPCLONE_LOG=debug asks for it.
    const known = err instanceof SnapError ? err : fsErrorToSnap(err);
    if (known) {
      writeErr(`snapclone: ${known.message}\n`);
      process.exitCode = known.exitCode;
    } else {
      const debug = process.env.SNAPCLONE_LOG === 'debug';
      const what = debug ? ((err as Error)?.stack ?? String(err)) : `${String((err as Error)?.message ?? err).split('\n')[0]} (SNAPCLONE_LOG=debug shows where)`;
      writeErr(`snapclone: unexpected error: ${what}\n`);
      process.exitCode = 1;
    }
    if (known && process.env.SNAPCLONE_LOG === 'debug' && known.cause) writeErr(`${(known.cause as Error).stack ?? String(known.cause)}\n`);
  },
);
