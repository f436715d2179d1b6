/** `snapclone clone`, and its --bench report. */
import { SnapError } from '../util/errors.js';
import { defaultCloneDir } from '../client/names.js';
import { out, repoName, serverUrl, type Values } from './common.js';
import { sendFirstResolve } from './first-request.js';
import { isTerminal, writeErr } from '../client/stdio.js';

export async function cloneCmd(v: Values, args: string[]): Promise<number> {
  if (args.length < 1 || args.length > 2) throw new SnapError('usage', 'clone takes NAME and an optional DIR (see snapclone help clone)');
  const name = repoName(args[0]!);
  const dir = args[1] ?? defaultCloneDir(name);
  if (dir === '') throw new SnapError('usage', 'DIR must not be empty');
  const mode = (v.mode as string | undefined) ?? 'editable';
  if (mode !== 'editable' && mode !== 'files') throw new SnapError('usage', `--mode must be editable or files, not ${mode}`);
  let depth: number | undefined;
  if (v.depth !== undefined) {
    // Exactly "1": Number() would also take "1.0", " 1", "0x1".
    if (v.depth !== '1') throw new SnapError('usage', `--depth supports only 1, not ${JSON.stringify(v.depth)}`);
    depth = 1;
  }
  const waitTimeoutMs = timeoutMs(v.timeout as string | undefined);
  const server = serverUrl(v);
  const token = process.env.SNAPCLONE_TOKEN || undefined;
  const proxy = v.proxy === true;
  // Resolve leaves before the client's modules load (first-request.ts); null where it would not pay.
  const early = sendFirstResolve({ server, token, name, ref: (v.branch as string | undefined) ?? '', mode: mode === 'files' ? 'files' : depth === 1 ? 'shallow' : 'full', proxy, dir });
  let result: import('../client/clone.js').CloneResult;
  try {
    const { clone } = await import('../client/clone.js');
    const { Progress } = await import('../client/progress.js');
    result = await clone({
      server,
      token,
      name,
      dir,
      branch: v.branch as string | undefined,
      depth,
      mode,
      waitTimeoutMs,
      proxy,
      // Progress on a terminal (not with --json); "Cloning into" wherever stderr goes, like git; neither with --quiet.
      progress: new Progress(isTerminal(2) && !v.json && !v.quiet, !v.quiet),
      ...(early ? { firstAnswer: early } : {}),
    });
  } finally {
    // A clone that failed before taking the early answer must not wait for it to exit.
    early?.cancel();
  }
  if (v.bench) writeErr(benchReport(result));
  if (v.json) out(v, result, '');
  return 0;
}

/** Waiting for a server build: 30 minutes unless --timeout SECONDS says otherwise. */
function timeoutMs(t: string | undefined): number {
  if (t === undefined) return 30 * 60_000;
  if (!/^\d+(\.\d+)?$/.test(t) || Number(t) <= 0) throw new SnapError('usage', `--timeout takes a number of seconds above 0, not ${JSON.stringify(t)}`);
  return Math.round(Number(t) * 1000);
}

/** Where the artifacts came from, when the server handed out object-store URLs. */
function fromStore(s: { artifacts: number; fellBack: number }): string {
  if (s.artifacts === 0 && s.fellBack === 0) return '';
  return `, ${s.artifacts} artifacts from the object store${s.fellBack ? `, ${s.fellBack} fell back to the server` : ''}`;
}

/** --bench: per-phase time, then the timeline of when each step ended. */
function benchReport(r: import('../client/clone.js').CloneResult): string {
  const p = r.phases;
  const mib = r.bytesDownloaded / 2 ** 20;
  const rate = p.download > 0 ? ` (${(mib / (p.download / 1000)).toFixed(0)} MiB/s)` : '';
  const rows: [string, number, string][] = [
    ['resolve', p.resolve, 'wall'],
    ['download', p.download, `wall, ${mib.toFixed(1)} MiB${rate}${fromStore(r.objectStore)}`],
    ['verify', p.verify, 'SHA-256 of artifacts + SHA-1 of blobs, all threads'],
    ['inflate', p.inflate, 'zlib/zstd, all writers'],
    ['write', p.write, `mkdir + files, ${r.writerThreads ? `all ${r.writerThreads} writer threads` : 'on the main thread'}, ${r.files} files`],
    ['index', p.index, 'wall: .git/index, refs, config'],
    ['rename', p.rename, 'wall'],
    ['total', r.timings.total!, `wall, plus ${r.timings.startup} ms process start-up`],
  ];
  const lines = rows.map(([k, ms, note]) => `${k.padEnd(9)} ${String(ms).padStart(7)} ms  ${note}`);
  const timeline = Object.entries(r.timings)
    .filter(([k]) => k !== 'startup' && k !== 'total')
    .map(([k, ms]) => `${k} ${ms}`)
    .join(', ');
  return `${lines.join('\n')}\ntimeline (ms since start): ${timeline}\npeak RSS ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB\n`;
}
