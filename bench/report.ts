/**
 * Markdown for one or more results files: the issue's targets (met / not met),
 * then per upstream and filesystem the timing table, ratios and other numbers.
 *
 *   node dist/bench/report.js .bench/results-A.json [.bench/results-B.json ...]
 * prints the combined report (upstreams from all files, each with its own commit).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { fmtBytes, fmtMs, fmtRatio, median } from './lib.js';
import { VARIANTS, VARIANT_LABEL, type Results, type Derived, type UpstreamResult, type Variant } from './types.js';

interface TargetRow {
  target: string;
  where: string;
  measured: string;
  met: boolean | null;
}

/** Partial results (a run stopped before its upstream finished) have no derived numbers yet. */
const NO_DERIVED: Derived = { ratioFull: NaN, ratioDepth1: NaN, ratioFilesVsFloor: NaN, writerFilesPerSecEditable: NaN, writerFilesPerSecFiles: NaN, peakRssFullBytes: NaN, bytesDownloaded: { full: NaN, depth1: NaN, files: NaN } };

const isName = (u: UpstreamResult, ...names: string[]) => names.includes(u.name);

const med = (u: UpstreamResult, fs: string, v: Variant) => {
  const x = u.results[fs]?.[v];
  return x && x.samples.length ? x.stats.median : NaN;
};

/** Per clone mode: git's variant, the peers' variants, snapclone's. The floor stands in for git in files mode. */
const MODES: { mode: string; git: Variant; peers: Variant[]; snap: Variant }[] = [
  { mode: 'full editable', git: 'git-full', peers: ['ripclone-full', 'cachew-full'], snap: 'snap-full' },
  { mode: 'depth 1', git: 'git-depth1', peers: ['ripclone-depth1'], snap: 'snap-depth1' },
  { mode: 'files', git: 'floor', peers: ['ripclone-files'], snap: 'snap-files' },
];

/** The fastest peer's median in a mode on one filesystem, or null when no peer ran it. */
function fastestPeer(u: UpstreamResult, fs: string, peers: Variant[]): { v: Variant; ms: number } | null {
  let best: { v: Variant; ms: number } | null = null;
  for (const v of peers) {
    const ms = med(u, fs, v);
    if (Number.isFinite(ms) && (!best || ms < best.ms)) best = { v, ms };
  }
  return best;
}

/** Issue 9's targets: against the peers, 15x git, the whole-clone floor, files on git/git, shaped 1 Gbit/s. */
function issue9Rows(r: Results, u: UpstreamResult): TargetRow[] {
  const rows: TargetRow[] = [];
  for (const fs of Object.keys(u.results)) {
    const where = `${u.name}, ${fs}${r.shape ? `, ${r.shape}` : ''}${r.rttMs ? `, RTT ${r.rttMs} ms` : ''}`;
    for (const m of MODES) {
      const p = fastestPeer(u, fs, m.peers);
      const sm = med(u, fs, m.snap);
      if (p && Number.isFinite(sm))
        rows.push({ target: `${m.mode}: snapclone <= fastest peer`, where, measured: `${fmtMs(sm)} vs ${VARIANT_LABEL[p.v]} ${fmtMs(p.ms)} (${fmtRatio(sm / p.ms)})`, met: sm <= p.ms });
    }
    const full = med(u, fs, 'git-full') / med(u, fs, 'snap-full');
    if (!r.shape && !r.rttMs && isName(u, 'git', 'core') && Number.isFinite(full)) rows.push({ target: 'editable full vs git clone >= 15x', where, measured: fmtRatio(full), met: full >= 15 });
    if (r.shape === '1gbit' && isName(u, 'git') && Number.isFinite(full)) rows.push({ target: 'editable full vs git clone >= 8x at 1 Gbit/s', where, measured: fmtRatio(full), met: full >= 8 });
    const fc = med(u, fs, 'snap-full') / med(u, fs, 'floor-clone');
    if (Number.isFinite(fc)) rows.push({ target: 'editable full within 1.5x of the whole-clone tar.zst floor', where, measured: fmtRatio(fc), met: fc <= 1.5 });
    const files = med(u, fs, 'snap-files') / med(u, fs, 'floor');
    if (isName(u, 'git') && Number.isFinite(files)) rows.push({ target: 'files mode within 1.5x of the tar.zst floor (git/git)', where, measured: fmtRatio(files), met: files <= 1.5 });
  }
  return rows;
}

/** Per mode and filesystem: git, each peer, snapclone, and the ratios between them. */
function peersTable(u: UpstreamResult, fss: string[]): string {
  const cols: { name: string; of: (m: (typeof MODES)[number]) => Variant | undefined }[] = [
    { name: 'ripclone', of: (m) => m.peers.find((v) => v.startsWith('ripclone-')) },
    { name: 'cachew', of: (m) => m.peers.find((v) => v.startsWith('cachew-')) },
  ];
  const rows: string[] = [];
  for (const fs of fss)
    for (const m of MODES) {
      if (!m.peers.some((v) => u.results[fs]?.[v])) continue;
      const p = fastestPeer(u, fs, m.peers);
      const sm = med(u, fs, m.snap);
      const g = med(u, fs, m.git);
      const peerCells = cols.map((c) => {
        const v = c.of(m);
        const x = v ? u.results[fs]?.[v] : undefined;
        if (!x) return '–';
        if (!x.samples.length) return x.errors[0]?.startsWith('fails:') ? x.errors[0].slice(0, 120) : 'failed';
        return fmtMs(x.stats.median);
      });
      // Files mode has no git counterpart: show the floor there, and snapclone / floor instead of a speed-up.
      const [gitCell, ratioCell] = m.git === 'floor' ? [`${fmtMs(g)} (floor)`, `${fmtRatio(sm / g)} of the floor`] : [fmtMs(g), fmtRatio(g / sm)];
      rows.push(`| ${m.mode} | ${fs} | ${gitCell} | ${peerCells.join(' | ')} | ${fmtMs(sm)} | ${ratioCell} | ${p ? `${fmtRatio(sm / p.ms)} (${VARIANT_LABEL[p.v]})` : 'n/a'} |`);
    }
  if (!rows.length) return '';
  return `\nAgainst the peers (medians; "git" is \`git clone\`, \`git clone --depth 1\`, and the tar.zst floor in files mode):\n\n| mode | fs | git | ${cols.map((c) => c.name).join(' | ')} | snapclone | git / snapclone | snapclone / fastest peer |\n|---|---|---:|---:|---:|---:|---:|---:|\n${rows.join('\n')}\n`;
}

function targetRows(all: { r: Results; u: UpstreamResult }[], startup: { ms: number; commit: string }[]): TargetRow[] {
  const rows: TargetRow[] = [];
  for (const { u } of all) {
    for (const [fs, d] of Object.entries(u.derived)) {
      const where = `${u.name}, ${fs}`;
      if (isName(u, 'git', 'core'))
        rows.push({ target: 'editable full vs git clone >= 10x', where, measured: fmtRatio(d.ratioFull), met: d.ratioFull >= 10 });
      rows.push({ target: '--depth 1 vs git clone --depth 1 >= 3x', where, measured: fmtRatio(d.ratioDepth1), met: d.ratioDepth1 >= 3 });
      if (u.files >= 5000)
        rows.push({ target: 'files mode within 1.3x of tar.zst floor (5000+ files)', where, measured: fmtRatio(d.ratioFilesVsFloor), met: d.ratioFilesVsFloor <= 1.3 });
      if (u.files >= 100_000) {
        rows.push({ target: 'writer >= 100,000 files/s (100k tree), files mode', where, measured: `${Math.round(d.writerFilesPerSecFiles).toLocaleString('en-US')} files/s`, met: d.writerFilesPerSecFiles >= 100_000 });
        rows.push({ target: 'writer >= 100,000 files/s (100k tree), editable', where, measured: `${Math.round(d.writerFilesPerSecEditable).toLocaleString('en-US')} files/s`, met: d.writerFilesPerSecEditable >= 100_000 });
      }
    }
    if (isName(u, 'git')) {
      const rss = Math.max(...Object.values(u.derived).map((d) => d.peakRssFullBytes));
      rows.push({ target: 'client peak RSS, full clone of git/git < 400 MB', where: `${u.name} (worst fs median)`, measured: `${(rss / 1e6).toFixed(0)} MB`, met: rss < 400e6 });
    }
  }
  for (const s of startup) rows.push({ target: 'start-up: spawn to the first request of `snapclone clone` <= 20 ms', where: `median of 20 (${s.commit})`, measured: fmtMs(s.ms), met: s.ms <= 20 });
  const served = all.filter(({ u }) => u.serve && 'gbPerSec' in u.serve);
  if (served.length) {
    // The target is about bulk serving: judge it on the largest artifact measured.
    const best = served.reduce((a, b) => ((b.u.serve as { artifact: { size: number } }).artifact.size > (a.u.serve as { artifact: { size: number } }).artifact.size ? b : a));
    const s = best.u.serve as { gbPerSec: number; artifact: { size: number }; clients: number };
    rows.push({ target: `serving >= 1 GB/s with ${s.clients} clients`, where: `${best.u.name}, ${fmtBytes(s.artifact.size)} artifact`, measured: `${s.gbPerSec.toFixed(2)} GB/s`, met: s.gbPerSec >= 1 });
  }
  return rows;
}

function upstreamSection(r: Results, u: UpstreamResult): string {
  const fss = Object.keys(u.results);
  let s = `### ${u.name} (${u.spec})\n\n`;
  s += `${u.files.toLocaleString('en-US')} files at ${u.commit.slice(0, 12)}; ${u.runs} timed runs (+${u.warmup} warm-up) per variant and filesystem; snapclone commit ${r.commit}${r.dirty ? ' (work tree had uncommitted changes)' : ''}${r.client ? `; client ${r.client}` : ''}.\n`;
  s += `Cold build (\`snapclone add\`, wall): ${fmtMs(u.coldBuildMs)}.\n\n`;
  if (r.shape) s += `Shaped network: ${r.shape} (tbf on loopback inside \`unshare -n\`).\n`;
  if (r.rttMs) s += `Round-trip delay: ${r.rttMs} ms added by a delaying TCP proxy in front of every server.\n`;
  if (u.peers) for (const [k, p] of Object.entries(u.peers)) s += `Peer ${k}: ${p.error ? `fails: ${p.error}` : `registered and every mode ready in ${fmtMs(p.buildMs)}`}.\n`;
  s += '\n';
  s += `| variant | ${fss.map((f) => `${f} median | min | max | peak RSS`).join(' | ')} |\n`;
  s += `|---|${fss.map(() => '---:|---:|---:|---:').join('|')}|\n`;
  for (const v of VARIANTS) {
    if (fss.every((f) => !u.results[f]![v])) continue;
    const cells = fss.map((f) => {
      const x = u.results[f]![v];
      if (!x) return 'not run | | | ';
      if (!x.samples.length) return `failed${x?.errors.length ? ` (${x.errors.length})` : ''} | | | `;
      const rss = median((x.peakRss ?? []).filter(Number.isFinite));
      return `${fmtMs(x.stats.median)}${x.errors.length ? ` (${x.errors.length} failed)` : ''} | ${fmtMs(x.stats.min)} | ${fmtMs(x.stats.max)} | ${Number.isFinite(rss) ? fmtBytes(rss) : 'n/a'}`;
    });
    s += `| ${VARIANT_LABEL[v]} | ${cells.join(' | ')} |\n`;
  }
  s += `\n| ratio (of medians) | ${fss.join(' | ')} |\n|---|${fss.map(() => '---:').join('|')}|\n`;
  s += `| git clone / snapclone clone | ${fss.map((f) => fmtRatio((u.derived[f] ?? NO_DERIVED).ratioFull)).join(' | ')} |\n`;
  s += `| git clone --depth 1 / snapclone --depth 1 | ${fss.map((f) => fmtRatio((u.derived[f] ?? NO_DERIVED).ratioDepth1)).join(' | ')} |\n`;
  s += `| snapclone --mode files / tar.zst floor | ${fss.map((f) => fmtRatio((u.derived[f] ?? NO_DERIVED).ratioFilesVsFloor)).join(' | ')} |\n`;
  s += `| writer files/s, editable | ${fss.map((f) => Math.round((u.derived[f] ?? NO_DERIVED).writerFilesPerSecEditable).toLocaleString('en-US')).join(' | ')} |\n`;
  s += `| writer files/s, files mode | ${fss.map((f) => Math.round((u.derived[f] ?? NO_DERIVED).writerFilesPerSecFiles).toLocaleString('en-US')).join(' | ')} |\n`;
  s += `| client peak RSS, full clone (median) | ${fss.map((f) => fmtBytes((u.derived[f] ?? NO_DERIVED).peakRssFullBytes)).join(' | ')} |\n`;
  if (fss.some((f) => u.results[f]!['floor-clone']))
    s += `| snapclone clone / whole-clone floor | ${fss.map((f) => fmtRatio(med(u, f, 'snap-full') / med(u, f, 'floor-clone'))).join(' | ')} |\n`;
  if (fss.some((f) => u.results[f]!['git-full-single']))
    s += `| git clone --single-branch --no-tags / ripclone clone | ${fss.map((f) => fmtRatio(med(u, f, 'git-full-single') / med(u, f, 'ripclone-full'))).join(' | ')} |\n`;
  s += peersTable(u, fss);
  s += phaseTable(u, fss);
  const d0 = u.derived[fss[0]!];
  s += `\nBytes: snapclone artifacts (status sizes) editable ${u.sizes ? fmtBytes(u.sizes.editable) : 'n/a'}, depth 1 ${u.sizes ? fmtBytes(u.sizes.shallow) : 'n/a'}, files ${u.sizes ? fmtBytes(u.sizes.files) : 'n/a'}`;
  if (d0) s += ` (downloaded per clone: ${fmtBytes(d0.bytesDownloaded.full)}, ${fmtBytes(d0.bytesDownloaded.depth1)}, ${fmtBytes(d0.bytesDownloaded.files)})`;
  s += `; git clone transfer (.pack kept) full ${fmtBytes(u.gitPackBytes.full)}, --depth 1 ${fmtBytes(u.gitPackBytes.depth1)}; tar.zst floor ${fmtBytes(u.floor.bytes)}${u.floorClone ? `, whole-clone floor ${fmtBytes(u.floorClone.bytes)}` : ''}.\n`;
  if (u.serve && 'gbPerSec' in u.serve) {
    const sv = u.serve;
    s += `Serving: ${sv.clients} clients, ${sv.requests} GETs of the largest artifact (${sv.artifact.kind}, ${fmtBytes(sv.artifact.size)}) in ${sv.seconds.toFixed(1)} s: **${sv.gbPerSec.toFixed(2)} GB/s** (request latency median ${fmtMs(sv.latencyMedianMs)}, max ${fmtMs(sv.latencyMaxMs)}${sv.errors ? `, ${sv.errors} errors` : ''}).\n`;
  } else if (u.serve) s += `Serving benchmark failed: ${u.serve.error}\n`;
  const bad = Object.entries(u.verify).filter(([, v]) => v !== 'ok');
  s += bad.length ? `Checks FAILED: ${bad.map(([k, v]) => `${k}: ${v}`).join('; ')}\n` : `Checks: ${Object.keys(u.verify).join(', ') || 'none'} ok.\n`;
  const errs = fss.flatMap((f) => VARIANTS.flatMap((v) => (u.results[f]![v]?.errors ?? []).map((e) => `${f} ${v}: ${e}`)));
  if (errs.length) s += `\nErrors:\n${errs.slice(0, 10).map((e) => `- ${e.slice(0, 300)}`).join('\n')}\n`;
  return `${s}\n`;
}

/** Median of each `clone --json` timing mark (ms since start) per snapclone variant and filesystem. */
function phaseTable(u: UpstreamResult, fss: string[]): string {
  const rows: string[] = [];
  const keys = new Set<string>();
  for (const f of fss) for (const v of ['snap-full', 'snap-depth1', 'snap-files'] as const) for (const c of u.results[f]?.[v]?.clone ?? []) for (const k of Object.keys(c.timings)) keys.add(k);
  const order = [...keys];
  if (!order.length) return '';
  for (const f of fss)
    for (const v of ['snap-full', 'snap-depth1', 'snap-files'] as const) {
      const cs = u.results[f]?.[v]?.clone ?? [];
      if (!cs.length) continue;
      rows.push(`| ${VARIANT_LABEL[v].replace('snapclone clone', 'snapclone')}, ${f} | ${order.map((k) => { const m = median(cs.map((c) => c.timings[k] ?? NaN).filter(Number.isFinite)); return Number.isFinite(m) ? String(Math.round(m)) : ''; }).join(' | ')} |`);
    }
  return `\nClient phases (\`clone --json\` timings, medians; \`startup\` is process start to clone start, the rest ms since clone start):\n\n| variant | ${order.join(' | ')} |\n|---|${order.map(() => '---:').join('|')}|\n${rows.join('\n')}\n`;
}

export function machineLine(r: Results): string {
  const m = r.machine;
  return `${m.nproc} CPUs (${m.cpuModel}), ${(m.memTotalBytes / 2 ** 30).toFixed(1)} GiB RAM, Linux ${m.kernel}, Node ${m.node}, ${m.git}, ${m.zstd}, ${m.tar}`;
}

/** One row per upstream and filesystem, one column per target of the issue; "-" where a target does not apply. */
function summaryTable(all: { r: Results; u: UpstreamResult }[]): string {
  const mark = (text: string, ok: boolean | null) => (ok === null ? text : `${text} ${ok ? '(met)' : '(**not met**)'}`);
  let s = '| upstream | fs | editable full vs git clone (>= 10x on git/git, vuejs/core) | --depth 1 vs git --depth 1 (>= 3x) | files vs tar.zst floor (<= 1.3x, 5000+ files) | writer files/s, files / editable (>= 100,000 on 100k tree) | start-up to first request (<= 20 ms) | peak RSS full (< 400 MB on git/git) | serving, 8 clients (>= 1 GB/s) |\n';
  s += '|---|---|---:|---:|---:|---:|---:|---:|---:|\n';
  for (const { r, u } of all)
    for (const [fs, d] of Object.entries(u.derived)) {
      const big = u.files >= 100_000;
      const sv = u.serve && 'gbPerSec' in u.serve ? u.serve : null;
      s += `| ${u.name} | ${fs} | ${mark(fmtRatio(d.ratioFull), isName(u, 'git', 'core') ? d.ratioFull >= 10 : null)} | ${mark(fmtRatio(d.ratioDepth1), d.ratioDepth1 >= 3)} | ${mark(fmtRatio(d.ratioFilesVsFloor), u.files >= 5000 ? d.ratioFilesVsFloor <= 1.3 : null)} | ${mark(`${Math.round(d.writerFilesPerSecFiles).toLocaleString('en-US')} / ${Math.round(d.writerFilesPerSecEditable).toLocaleString('en-US')}`, big ? d.writerFilesPerSecFiles >= 100_000 && d.writerFilesPerSecEditable >= 100_000 : null)} | ${mark(fmtMs(r.startup.stats.median), r.startup.stats.median <= 20)} | ${mark(`${(d.peakRssFullBytes / 1e6).toFixed(0)} MB`, isName(u, 'git') ? d.peakRssFullBytes < 400e6 : null)} | ${sv ? mark(`${sv.gbPerSec.toFixed(2)} GB/s`, sv.gbPerSec >= 1) : 'n/a'} |\n`;
    }
  return s;
}

export function renderReport(files: Results[]): string {
  const all = files.flatMap((r) => r.upstreams.map((u) => ({ r, u })));
  const startup = files.filter((r) => r.startup.samples.length).map((r) => ({ ms: r.startup.stats.median, commit: r.commit }));
  let s = `## snapclone benchmark results\n\n`;
  for (const r of files)
    s += `- ${r.startedAt} at commit ${r.commit}${r.dirty ? ' (+uncommitted changes)' : ''}: ${r.upstreams.map((u) => u.name).join(', ')}; ${machineLine(r)}; filesystems: ${r.filesystems.map((f) => `${f.label} = ${f.dir} (${f.fsType} on ${f.device})`).join(', ')}\n`;
  s += `\n### Summary\n\nMedians; ratios are git median / snapclone median (files: snapclone / floor). Serving is measured once per upstream (largest artifact).\n\n${summaryTable(all)}`;
  s += `\n### Targets\n\n| target | where | measured (median) | met? |\n|---|---|---:|---|\n`;
  for (const t of [...targetRows(all, startup), ...all.flatMap(({ r, u }) => issue9Rows(r, u))]) s += `| ${t.target} | ${t.where} | ${t.measured} | ${t.met === null ? 'n/a' : t.met ? 'met' : '**not met**'} |\n`;
  s += '\n';
  if (startup.length) s += `CLI start-up (spawn of \`bin/snapclone clone\` to its first request, 20 runs): ${files.map((r) => `median ${fmtMs(r.startup.stats.median)}, min ${fmtMs(r.startup.stats.min)}, max ${fmtMs(r.startup.stats.max)}`).join('; ')}.\n\n`;
  for (const { r, u } of all) s += upstreamSection(r, u);
  return s;
}

function main(): void {
  const paths = process.argv.slice(2);
  if (!paths.length) throw new Error('usage: node dist/bench/report.js RESULTS.json [RESULTS.json ...]');
  const files = paths.map((p) => JSON.parse(readFileSync(p, 'utf8')) as Results);
  process.stdout.write(renderReport(files));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    main();
  } catch (e) {
    process.stderr.write(`report: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
