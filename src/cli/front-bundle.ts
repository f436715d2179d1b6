/**
 * Run by Bun at build time (launcher.ts): bundles the modules of src/cli that a
 * clone runs before its first request (main, commands, clone-cmd, common,
 * first-request, help, stdio-guard) into dist/src/cli/main.front.js, beside
 * main.js. One file instead of seven saves Bun ~3 ms of module loading, a
 * sixth of the start-up budget. Everything else (the client, util, the server,
 * the other commands) stays a file of dist/ imported by the same relative
 * path, so each module has one instance (instanceof SnapError holds) and
 * relative URLs (package.json) still resolve. common.js is also loaded as a
 * file by admin-cmd and gc-cmd: two instances, harmless while it holds no state.
 * Prints the bundled files' names (JSON) for the launcher's freshness check.
 */
import { fileURLToPath } from 'node:url';

interface BunResolveArgs {
  path: string;
  kind: string;
}
interface BunBuild {
  build(o: {
    entrypoints: string[];
    outdir: string;
    target: 'bun';
    naming: string;
    plugins: { name: string; setup(b: { onResolve(o: { filter: RegExp }, f: (a: BunResolveArgs) => { path: string; external: true } | undefined): void }): void }[];
  }): Promise<{ success: boolean; logs: unknown[] }>;
}
declare const Bun: BunBuild;

/** The dynamic imports on the clone's way to its first request: bundled. */
const FRONT = new Set(['./commands.js', './clone-cmd.js']);
const FRONT_NAME = 'main.front.js'; // launcher.ts names it too

const dir = fileURLToPath(new URL('.', import.meta.url));
/** What went into the bundle, for the launcher's freshness check (printed on stdout). */
const inputs = new Set(['main.js']);
const r = await Bun.build({
  entrypoints: [fileURLToPath(new URL('./main.js', import.meta.url))],
  outdir: dir,
  target: 'bun',
  naming: FRONT_NAME,
  plugins: [
    {
      name: 'only-the-front',
      setup(b) {
        // Only src/cli's own modules go in: a module the client also imports (errors.js: instanceof SnapError; stdio-closed.js) must stay one instance.
        b.onResolve({ filter: /.*/ }, (a) => {
          if (a.kind.startsWith('entry-point')) return undefined;
          if ((a.kind === 'dynamic-import' && !FRONT.has(a.path)) || !a.path.startsWith('./')) return { path: a.path, external: true };
          inputs.add(a.path.slice(2)); // a sibling in dist/src/cli: only src/cli's own modules get this far
          return undefined;
        });
      },
    },
  ],
});
if (!r.success) {
  process.stderr.write(`snapclone: front bundle failed: ${JSON.stringify(r.logs)}\n`);
  process.exit(1);
}
process.stdout.write(`${JSON.stringify([...inputs].sort())}\n`);
