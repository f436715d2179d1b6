/**
 * snapclone command line. Only argument parsing lives here; each command's
 * module is imported when that command runs, so --version and --help start fast.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readFileSync } from 'node:fs';
import { SnapError } from '../util/errors.js';
import { HELP, COMMAND_HELP } from './help.js';

type Values = Record<string, string | boolean | undefined>;

const COMMON = { server: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } as const;
const SPECS: Record<string, ParseArgsConfig['options']> = {
  serve: { host: { type: 'string' }, port: { type: 'string' }, 'data-dir': { type: 'string' }, 'build-concurrency': { type: 'string' }, help: COMMON.help },
  add: { ...COMMON, name: { type: 'string' }, 'no-wait': { type: 'boolean' } },
  sync: { ...COMMON, branch: { type: 'string', short: 'b' }, 'no-wait': { type: 'boolean' } },
  status: { ...COMMON },
  clone: { ...COMMON, branch: { type: 'string', short: 'b' }, depth: { type: 'string' }, mode: { type: 'string' }, bench: { type: 'boolean' } },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    const topic = cmd === 'help' ? rest[0] : undefined;
    process.stdout.write(topic && COMMAND_HELP[topic] ? COMMAND_HELP[topic] : HELP);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === '--version' || cmd === '-V' || cmd === 'version') {
    process.stdout.write(`snapclone ${version()}\n`);
    return 0;
  }
  const spec = SPECS[cmd];
  if (!spec) throw new SnapError('usage', `unknown command '${cmd}' (see snapclone --help)`);
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: rest, options: spec, allowPositionals: true, strict: true }) as { values: Values; positionals: string[] };
  } catch (err) {
    throw new SnapError('usage', `${(err as Error).message.split('\n')[0]} (see snapclone help ${cmd})`);
  }
  if (parsed.values.help) {
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
    if (err instanceof SnapError) {
      process.stderr.write(`snapclone: ${err.message}\n`);
      process.exitCode = err.exitCode;
    } else {
      process.stderr.write(`snapclone: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
