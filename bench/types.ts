/** The shape of a results file (results-*.json) written by run.ts and read by report.ts. */
import type { Stats } from './lib.js';
import type { ServeBenchResult } from './serve.js';

export const VARIANTS = [
  'git-full',
  'git-full-single',
  'git-depth1',
  'snap-full',
  'snap-depth1',
  'snap-files',
  'ripclone-full',
  'ripclone-depth1',
  'ripclone-files',
  'cachew-full',
  'floor',
  'floor-clone',
] as const;
/** What runs without --only: everything but the peers' variants (added by --peer) and the ripclone-only baseline. */
export const DEFAULT_VARIANTS = ['git-full', 'git-depth1', 'snap-full', 'snap-depth1', 'snap-files', 'floor', 'floor-clone'] as const;
export type Variant = (typeof VARIANTS)[number];

export const VARIANT_LABEL: Record<Variant, string> = {
  'git-full': 'git clone',
  'git-depth1': 'git clone --depth 1',
  'snap-full': 'snapclone clone',
  'snap-depth1': 'snapclone clone --depth 1',
  'snap-files': 'snapclone clone --mode files',
  'git-full-single': 'git clone --single-branch --no-tags',
  'ripclone-full': 'ripclone clone',
  'ripclone-depth1': 'ripclone clone --depth 1',
  'ripclone-files': 'ripclone clone --mode files',
  'cachew-full': 'cachew git restore',
  floor: 'tar.zst floor (zstd -dc \\| tar -x)',
  'floor-clone': 'tar.zst floor of a whole clone (.git + tree)',
};

/** What `snapclone clone --json` prints (the fields the harness uses). */
export interface CloneJson {
  files: number;
  bytesDownloaded: number;
  peakRssBytes: number;
  timings: Record<string, number>;
}

export interface VariantResult {
  samples: number[];
  stats: Stats;
  errors: string[];
  /** snapclone variants: the --json object of each timed run. */
  clone?: CloneJson[];
  /** git variants: bytes of .git/objects/pack/*.pack after each timed run. */
  packBytes?: number[];
  /** Peak RSS (bytes) of each timed run: wait4 rusage of the command and its descendants (the largest process). */
  peakRss?: number[];
}

export interface FsInfo {
  label: string;
  dir: string;
  fsType: string;
  device: string;
}

export interface Derived {
  /** git median / snapclone median (full, depth 1); snapclone median / floor median (files). */
  ratioFull: number;
  ratioDepth1: number;
  ratioFilesVsFloor: number;
  /** files / (timings.written - timings.mkdir), medians over runs. */
  writerFilesPerSecEditable: number;
  writerFilesPerSecFiles: number;
  peakRssFullBytes: number;
  bytesDownloaded: { full: number; depth1: number; files: number };
}

export interface UpstreamResult {
  spec: string;
  path: string;
  name: string;
  commit: string;
  files: number;
  runs: number;
  warmup: number;
  coldBuildMs: number;
  buildJob: { id?: number; startedAt?: number | null; finishedAt?: number | null; commit?: string | null } | null;
  sizes: { editable: number; shallow: number; files: number } | null;
  floor: { bytes: number; buildMs: number };
  /** The whole-clone floor archive (.git + tree); absent in older results. */
  floorClone?: { bytes: number; buildMs: number };
  /** Per peer: registration to every mode ready, or why it could not take part. */
  peers?: Record<string, { buildMs: number; error: string | null }>;
  gitPackBytes: { full: number; depth1: number };
  verify: Record<string, string>;
  results: Record<string, Record<Variant, VariantResult>>;
  derived: Record<string, Derived>;
  serve: ServeBenchResult | { error: string } | null;
}

export interface Machine {
  nproc: number;
  cpuModel: string;
  memTotalBytes: number;
  kernel: string;
  node: string;
  git: string;
  zstd: string;
  tar: string;
}

export interface Results {
  format: 'snapclone.bench';
  version: 1;
  startedAt: string;
  finishedAt: string | null;
  /** How the snapclone client ran: its launcher's first line (the runtime), or node bin/snapclone.js. */
  client?: string;
  commit: string;
  dirty: boolean;
  argv: string[];
  /** Shaped network mode (--shape), e.g. "1gbit"; absent or null on plain loopback. */
  shape?: string | null;
  /** Round-trip delay (ms) added by the delaying proxy (--rtt); absent or 0 for none. */
  rttMs?: number;
  machine: Machine;
  filesystems: FsInfo[];
  startup: { samples: number[]; stats: Stats };
  upstreams: UpstreamResult[];
}
