/**
 * Peer runner: other clone accelerators raced beside git and snapclone in the
 * same interleaved rounds. Each peer is built by whoever runs the benchmark from
 * that project's own source (never vendored, never needed by the tests); the
 * harness is given the directory holding its binaries:
 *
 *   --peer ripclone=<dir with ripclone and ripclone-server>
 *   --peer cachew=<dir with cachew and cachewd>
 *
 * Per upstream, each peer's server starts on loopback with a data dir of its own,
 * the upstream is registered and warmed until every mode the peer offers answers,
 * and the peer contributes its variants. A peer that cannot build or serve the
 * repository is reported as failed with the reason; the run goes on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, log, rmrf, sleep, timed, waitFor, type Timed } from './lib.js';
import { stopProc, trackChild } from './proc.js';
import { startHttpsGit, type HttpsGit } from './https-git.js';
import type { Variant } from './types.js';

export const PEER_KINDS = ['ripclone', 'cachew'] as const;
export type PeerKind = (typeof PEER_KINDS)[number];

export interface PeerSpec {
  kind: PeerKind;
  dir: string;
}

/** A command line to time; run.ts wraps it (peak RSS) and times it like every other variant. */
export interface Cmd {
  argv: string[];
  env?: NodeJS.ProcessEnv;
}

export interface PeerRun {
  kind: PeerKind;
  /** Variant -> command for a target dir. Empty when the peer failed. */
  commands: Partial<Record<Variant, (target: string) => Cmd>>;
  /** Registration to every mode ready (wall ms), NaN when unknown. */
  buildMs: number;
  /** Why the peer could not take part, or null. */
  error: string | null;
  stop: () => Promise<void>;
}

/** The variants each peer offers (cachew restores full clones only). */
export const PEER_VARIANTS: Record<PeerKind, Variant[]> = {
  ripclone: ['ripclone-full', 'ripclone-depth1', 'ripclone-files'],
  cachew: ['cachew-full'],
};

export function parsePeer(s: string): PeerSpec {
  const m = /^([a-z]+)=(.+)$/.exec(s);
  if (!m || !(PEER_KINDS as readonly string[]).includes(m[1]!)) throw new Error(`--peer wants ripclone=<dir> or cachew=<dir>, got ${s}`);
  const kind = m[1] as PeerKind;
  const need = kind === 'ripclone' ? ['ripclone', 'ripclone-server'] : ['cachew', 'cachewd'];
  for (const b of need) if (!existsSync(join(m[2]!, b))) throw new Error(`--peer ${kind}: ${join(m[2]!, b)} does not exist (build it from the peer's own source)`);
  return { kind, dir: m[2]! };
}

function spawnServer(argv: string[], env: NodeJS.ProcessEnv, logPath: string, cwd?: string): ChildProcess {
  const out = createWriteStream(logPath);
  const p = spawn(argv[0]!, argv.slice(1), { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  p.stdout!.pipe(out);
  p.stderr!.pipe(out);
  trackChild(p);
  return p;
}

/** The gist of a failed command's output: its last lines before any backtrace (Rust prints one after the error). */
function lastLines(t: Timed): string {
  const lines = (t.stderr.trim() || t.stdout.trim()).split('\n');
  const bt = lines.findIndex((l) => /^\s*(stack backtrace|\d+: )/i.test(l));
  const kept = (bt >= 0 ? lines.slice(0, bt) : lines).filter((l) => l.trim());
  return kept.slice(-3).join(' | ').slice(0, 400);
}

/** Retry a command until it succeeds (a peer still building answers "not ready"), or give up after timeoutMs. */
async function untilOk(what: string, run: () => Promise<Timed>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: Timed | null = null;
  while (Date.now() < deadline) {
    last = await run();
    if (last.code === 0) return;
    await sleep(500);
  }
  throw new Error(`${what} never succeeded: ${last ? lastLines(last) : 'not run'}`);
}

async function failed(kind: PeerKind, e: unknown, stop: () => Promise<void>): Promise<PeerRun> {
  const error = (e as Error).message;
  log(`peer ${kind}: fails: ${error}`);
  await stop();
  return { kind, commands: {}, buildMs: NaN, error, stop: async () => {} };
}

// ---------------------------------------------------------------- ripclone

/**
 * ripclone-server on local disk + SQLite; the upstream is reached through its
 * test override RIPCLONE_ORIGIN_BASE (repos at <origins>/<owner>/<name>.git), and
 * RIPCLONE_TRUST_GATEWAY=1 keeps it from probing github.com for visibility.
 */
/** How clients reach a server: the URL itself, or through a delaying proxy (--rtt). */
export type Via = (url: string) => Promise<string>;

async function startRipclone(spec: PeerSpec, repo: string, name: string, work: string, scratch: string, via: Via): Promise<PeerRun> {
  const origins = join(work, 'origins');
  mkdirSync(join(origins, 'bench'), { recursive: true });
  symlinkSync(repo, join(origins, 'bench', `${name}.git`));
  mkdirSync(join(work, 'repos'), { recursive: true });
  const token = 'snapclone-bench';
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const serverEnv = {
    ...process.env,
    RIPCLONE_SERVER_TOKEN: token,
    RIPCLONE_METADATA: 'sqlite',
    RIPCLONE_METADATA_DB_URL: `sqlite://${join(work, 'meta.db')}`,
    RIPCLONE_CONFIG: join(work, 'server-config'),
    RIPCLONE_ORIGIN_BASE: `file://${origins}`,
    RIPCLONE_TRUST_GATEWAY: '1',
    RIPCLONE_POLL_INTERVAL_SECS: '0',
    RUST_LOG: 'warn',
    TMPDIR: join(work, 'repos'),
  };
  const proc = spawnServer(
    [join(spec.dir, 'ripclone-server'), '--cas-dir', join(work, 'cas'), '--repo-root', join(work, 'repos'), '--host', '127.0.0.1', '--port', String(port)],
    serverEnv,
    join(work, 'server.log'),
    work,
  );
  const stop = () => stopProc(proc);
  const clientEnv: NodeJS.ProcessEnv = {
    ...process.env,
    RIPCLONE_SERVER_TOKEN: token,
    RIPCLONE_NO_METRICS: '1',
    RIPCLONE_VERIFY_UPSTREAM: 'never',
    RIPCLONE_NO_CACHE: '1',
    RIPCLONE_CONFIG: join(work, 'client-config'),
  };
  const cli = (args: string[], server = url): Cmd => ({ argv: [join(spec.dir, 'ripclone'), '--server', server, ...args], env: clientEnv });
  const slug = `bench/${name}`;
  const clientUrl = await via(url);
  const commands: PeerRun['commands'] = {
    'ripclone-full': (t) => cli(['clone', slug, t], clientUrl),
    'ripclone-depth1': (t) => cli(['clone', slug, t, '--depth', '1'], clientUrl),
    'ripclone-files': (t) => cli(['clone', slug, t, '--mode', 'files'], clientUrl),
  };
  const run = (c: Cmd) => timed(c.argv, { env: c.env, timeoutMs: 30 * 60_000 });
  try {
    await waitFor('ripclone-server /healthz', async () => (await fetch(`${url}/healthz`)).status === 200, 30_000);
    const t0 = performance.now();
    for (const args of [['add', slug], ['sync', slug]]) {
      const r = await run(cli(args));
      if (r.code !== 0) throw new Error(`ripclone ${args[0]}: ${lastLines(r)}`);
    }
    // Builds are two-phase (depth 1 first, then history, then the archive): every mode must answer before the race.
    for (const v of PEER_VARIANTS.ripclone) {
      const t = join(scratch, `ripclone-warm-${v}`);
      await untilOk(`ripclone ${v}`, () => (rmrf(t), run(commands[v]!(t))), 5 * 60_000);
      rmrf(t);
    }
    const buildMs = performance.now() - t0;
    log(`peer ripclone on ${url}: ${name} ready in ${(buildMs / 1000).toFixed(1)} s`);
    return { kind: 'ripclone', commands, buildMs, error: null, stop };
  } catch (e) {
    return failed('ripclone', e, stop);
  }
}

// ---------------------------------------------------------------- cachew

/**
 * cachewd with a disk cache, snapshots on, in front of our HTTPS smart-HTTP
 * upstream (https-git.ts). The first restore makes the mirror and the snapshot;
 * later ones restore the cached tar.zst.
 */
async function startCachew(spec: PeerSpec, repo: string, name: string, work: string, scratch: string, via: Via): Promise<PeerRun> {
  let upstream: HttpsGit | null = null;
  let proc: ChildProcess | null = null;
  const stop = async () => {
    if (proc) await stopProc(proc);
    if (upstream) await upstream.stop();
  };
  try {
    upstream = await startHttpsGit(repo, name, join(work, 'upstream'));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const state = join(work, 'state');
    mkdirSync(state, { recursive: true });
    const config = join(work, 'cachew.hcl');
    writeFileSync(
      config,
      [`state = "${state}"`, `bind = "127.0.0.1:${port}"`, `url = "${url}/"`, 'log {', '  level = "warn"', '}', 'strategy git {', '  snapshot-interval = "1h"', '}', 'cache disk {', '  limit-mb = 50000', '  max-ttl = "8h"', '}', 'metadata memory {}', ''].join('\n'),
    );
    const env = { ...process.env, GIT_SSL_NO_VERIFY: '1' };
    proc = spawnServer([join(spec.dir, 'cachewd'), '--config', config], env, join(work, 'server.log'), work);
    const exited = proc;
    await waitFor(
      'cachewd',
      async () => {
        if (exited.exitCode !== null) throw new Error('cachewd exited');
        await fetch(`${url}/`);
        return true;
      },
      30_000,
    );
    const clientUrl = await via(url);
    const commands: PeerRun['commands'] = {
      'cachew-full': (t) => ({ argv: [join(spec.dir, 'cachew'), '--url', clientUrl, 'git', 'restore', upstream!.url, t], env }),
    };
    const t0 = performance.now();
    const t = join(scratch, 'cachew-warm');
    await untilOk('cachew git restore', () => (rmrf(t), timed(commands['cachew-full']!(t).argv, { env, timeoutMs: 30 * 60_000 })), 20 * 60_000);
    rmrf(t);
    const buildMs = performance.now() - t0;
    log(`peer cachew on ${url} (upstream ${upstream.url}): ${name} ready in ${(buildMs / 1000).toFixed(1)} s`);
    return { kind: 'cachew', commands, buildMs, error: null, stop };
  } catch (e) {
    return failed('cachew', e, stop);
  }
}

export function startPeer(spec: PeerSpec, repo: string, name: string, work: string, scratch: string, via: Via = async (u) => u): Promise<PeerRun> {
  mkdirSync(work, { recursive: true });
  mkdirSync(scratch, { recursive: true });
  return spec.kind === 'ripclone' ? startRipclone(spec, repo, name, work, scratch, via) : startCachew(spec, repo, name, work, scratch, via);
}
