/**
 * Run by Bun at build time (launcher.ts): bundles the client's side of the
 * command line (main.js and every module of dist/ it reaches, the clone's
 * client included) into dist/src/cli/main.front.js plus chunks named
 * `main.front-<hash>.js` beside it, one per part a command loads on demand
 * (code splitting: what a clone runs before its first request stays in
 * main.front.js; the client, loaded while resolve is on its way, comes as a
 * few chunks instead of ~30 files: ~5 ms less of Bun's module loading).
 *
 * Every module of the bundle has one instance (instanceof SnapError holds),
 * because nothing outside it loads them as files on the same thread: left out
 * are only `serve` and `worker` (they run on Node, which never loads the
 * bundle: main.js hands them over before importing anything) and packages.
 * Writer threads load dist/src/client/worker.js and its imports as files, in
 * their own realm. Chunks live in dist/src/cli, so a module that finds a file
 * by import.meta.url must name a path that resolves the same from there as
 * from its own directory (pool.ts: '../client/worker.js').
 * Prints the bundled files' paths relative to dist/src/cli (JSON) for the
 * launcher's freshness check.
 */
import { readdirSync, rmSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

interface BunResolveArgs {
  path: string;
  importer: string;
  kind: string;
}
interface BunBuild {
  build(o: {
    entrypoints: string[];
    outdir: string;
    target: 'bun';
    splitting: boolean;
    naming: { entry: string; chunk: string };
    plugins: { name: string; setup(b: { onResolve(o: { filter: RegExp }, f: (a: BunResolveArgs) => { path: string; external: true } | undefined): void }): void }[];
  }): Promise<{ success: boolean; logs: unknown[] }>;
}
declare const Bun: BunBuild;

/** Commands that run on Node only (main.js hands them over first): their modules stay files. */
const NODE_ONLY = new Set(['./serve-cmd.js', './worker-cmd.js']);
const FRONT_NAME = 'main.front.js'; // launcher.ts names it too
/** Chunk files: every file of this shape in dist/src/cli is the bundle's, removed before each build (launcher.ts names it too). */
const CHUNK_FILE = /^main\.front-[a-z0-9]+\.js$/;

const dir = fileURLToPath(new URL('.', import.meta.url));
for (const f of readdirSync(dir)) if (f === FRONT_NAME || CHUNK_FILE.test(f)) rmSync(join(dir, f));
/** What went into the bundle, for the launcher's freshness check (printed on stdout). */
const inputs = new Set(['main.js']);
const r = await Bun.build({
  entrypoints: [join(dir, 'main.js')],
  outdir: dir,
  target: 'bun',
  splitting: true,
  naming: { entry: FRONT_NAME, chunk: 'main.front-[hash].js' },
  plugins: [
    {
      name: 'the-client-side',
      setup(b) {
        b.onResolve({ filter: /.*/ }, (a) => {
          if (a.kind.startsWith('entry-point')) return undefined;
          if (!a.path.startsWith('.') || (dirname(a.importer) === dir.replace(/\/$/, '') && NODE_ONLY.has(a.path))) return { path: a.path, external: true };
          inputs.add(relative(dir, resolve(dirname(a.importer), a.path)));
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
