/**
 * CONTRACT STUB (lead, issue 7): history levels. BUILD implements.
 *
 * The history of a repository is a chain of immutable levels, oldest first,
 * disjoint: each level's packs hold the objects reachable from its tips and
 * not from the tips of earlier levels. A sync adds one small level for what is
 * new; compaction merges the newest levels geometrically (see CONTRACTS.md).
 */
import type { PackRef } from '../clonepack/manifest.js';
import type { ArtifactStore } from '../storage/artifact-store.js';

export interface HistoryLevel {
  /** Empty only for a level that added tips without new objects. */
  packs: PackRef[];
  /** Sorted unique object ids (ref tips) whose closure levels <= this one hold. */
  tips: string[];
  /** Sum of pack sizes (bytes). */
  bytes: number;
}

export interface LevelUpdate {
  levels: HistoryLevel[];
  /** False when every tip was already covered: nothing was built or stored. */
  changed: boolean;
  /** Bytes of packs and idx files this update stored that were not stored before. */
  newBytes: number;
}

/** Bring the chain up to date with `tips` (every branch and tag oid of the mirror now). */
export async function updateLevels(req: {
  mirrorDir: string;
  levels: HistoryLevel[];
  tips: string[];
  scratchDir: string;
  store: ArtifactStore;
  maxPackBytes?: number;
  report?: (phase: string) => void;
}): Promise<LevelUpdate> {
  void req;
  throw new Error('updateLevels: not implemented yet (BUILD)');
}
