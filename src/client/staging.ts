/**
 * Where a clone is written before it appears, and how it appears. Like git,
 * the target directory is created when missing and filled in place when it is
 * an existing empty directory (a mount point, the current directory, a symlink
 * to an empty directory), so it keeps its identity: inode, owner, mode, ACLs.
 *
 * The tree is written into a hidden staging directory inside the target: the
 * same file system, so each top-level entry then moves up with one atomic
 * rename. A failed or interrupted clone removes what it moved, the staging
 * directory, and the target and parent directories if it made them.
 *
 * The staging directory's name records its owner (pid, process start time and
 * boot id), so a later clone into the same target tells the leftovers of a dead clone
 * (SIGKILL, power loss) from a clone still running, and removes them; a target
 * holding only such leftovers counts as empty.
 */
import { lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { SnapError } from '../util/errors.js';
import { pidExists } from '../util/process.js';

const PREFIX = '.snapclone-staging-';
/** pid, start time (or x), boot id (optional: not on systems without /proc, nor in names made before it was recorded), random. */
const STAGING_NAME = /^\.snapclone-staging-(\d+)-(\d+|x)-(?:([0-9a-f]{8})-)?[0-9a-f]{12}$/;

/** What is at the target path before a clone, found without writing anything. */
export interface TargetState {
  /** The directory to fill: the target, or the real directory a target symlink points to. */
  dir: string;
  /** The directory exists already (it is then empty but for `stale`). */
  exists: boolean;
  /** Staging directories of clones that are no longer running. */
  stale: string[];
}

/**
 * Check that `target` does not exist or is an empty directory (a symlink to
 * one counts, as for git). Throws target-exists otherwise, also when another
 * clone is writing there now.
 */
export function inspectTarget(target: string): TargetState {
  const notEmpty = () => new SnapError('target-exists', `destination path '${target}' already exists and is not an empty directory`);
  let st;
  try {
    st = lstatSync(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { dir: target, exists: false, stale: [] };
    throw err;
  }
  let dir = target;
  if (st.isSymbolicLink()) {
    // The one symlink we follow is the one the user named as the target.
    let real;
    try {
      real = statSync(target);
    } catch {
      throw notEmpty(); // a dangling symlink
    }
    if (!real.isDirectory()) throw notEmpty();
    dir = realpathSync(target);
  } else if (!st.isDirectory()) throw notEmpty();
  const stale: string[] = [];
  for (const name of readdirSync(dir, { encoding: 'buffer' })) {
    const owner = stagingOwner(name.toString('latin1'));
    if (!owner) throw notEmpty();
    if (ownerAlive(owner)) throw new SnapError('target-exists', `another snapclone (pid ${owner.pid}) is cloning into '${target}'`);
    stale.push(join(dir, name.toString('latin1')));
  }
  return { dir, exists: true, stale };
}

export class Staging {
  /** Where the clone's tree is written. */
  readonly root: string;
  private readonly moved: Buffer[] = [];
  private finished = false;
  private interrupted = false;

  private constructor(
    /** The directory being filled. */
    readonly dir: string,
    root: string,
    /** Directories this clone created (the target, missing parents), deepest first: removed on failure. */
    private readonly created: string[],
  ) {
    this.root = root;
  }

  /**
   * Make the staging directory inside the target (creating the target and its
   * parents when missing) and claim the target: if another clone raced us into
   * the same directory, one of us gives up before writing anything.
   */
  static create(target: string, state: TargetState = inspectTarget(target)): Staging {
    const created: string[] = [];
    if (!state.exists) {
      const parent = dirname(state.dir);
      created.push(...makeParents(parent));
      try {
        mkdirSync(state.dir, { mode: 0o777 }); // like git: 0777 minus the umask
        created.unshift(state.dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          removeDirs(created);
          throw err;
        }
        state = inspectTarget(target); // made by someone else meanwhile: fill it if it is empty
      }
    }
    for (const s of state.stale) rmSync(s, { recursive: true, force: true, maxRetries: 3 });
    const boot = bootId();
    const root = join(state.dir, `${PREFIX}${process.pid}-${startTime(process.pid) ?? 'x'}-${boot ? `${boot}-` : ''}${Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(6))).toString('hex')}`);
    try {
      mkdirSync(root, { mode: 0o700 });
    } catch (err) {
      removeDirs(created);
      throw err;
    }
    const staging = new Staging(state.dir, root, created);
    const others = readdirSync(state.dir).filter((n) => join(state.dir, n) !== root);
    if (others.length) {
      staging.rollback();
      throw new SnapError('target-exists', `destination path '${target}' changed while the clone started (another clone into it?)`);
    }
    return staging;
  }

  /**
   * Move top-level entries of the staging directory up into the target, each
   * with one rename (never over something that exists). `only` picks entries
   * by name; by default, all that are left.
   */
  moveUp(only?: (name: string) => boolean): void {
    this.checkNotInterrupted();
    const dirBuf = Buffer.from(this.dir + sep);
    const rootBuf = Buffer.from(this.root + sep);
    for (const name of readdirSync(this.root, { encoding: 'buffer' })) {
      if (only && !only(name.toString('latin1'))) continue;
      const dest = Buffer.concat([dirBuf, name]);
      if (exists(dest)) throw new SnapError('target-exists', `'${dest.toString()}' appeared in the target during the clone`);
      renameSync(Buffer.concat([rootBuf, name]), dest);
      this.moved.push(name);
    }
  }

  /** Everything has moved up: remove the (now empty) staging directory. */
  finish(): void {
    this.checkNotInterrupted();
    rmdirSync(this.root);
    this.finished = true;
  }

  /**
   * Undo the clone, synchronously (it also runs from signal handlers): remove
   * what was moved up, the staging directory, and directories this clone made.
   * Best effort and idempotent; a pre-existing target is left empty.
   */
  rollback(): void {
    if (this.finished) return;
    this.finished = true;
    const dirBuf = Buffer.from(this.dir + sep);
    for (const name of this.moved.splice(0).reverse()) rmQuietly(Buffer.concat([dirBuf, name]));
    rmQuietly(this.root);
    removeDirs(this.created);
  }

  /** A signal is undoing the clone: from now on nothing moves up and the clone cannot finish. */
  interrupt(): void {
    this.interrupted = true;
  }

  private checkNotInterrupted(): void {
    if (this.interrupted) throw new SnapError('internal', 'interrupted');
  }

  /** A path inside the staging directory as the user will know it (inside the target). */
  shown(path: string): string {
    const rel = relative(this.root, path);
    return rel.startsWith('..') ? path : join(this.dir, rel);
  }
}

export interface StagingOwner {
  pid: number;
  /** Start time in clock ticks since boot, where /proc tells it. */
  start: string | null;
  /** The first 8 hex digits of the kernel's boot id, where /proc tells it. */
  boot: string | null;
}

/** The owner a staging directory's name records, or null if it is not one of ours. */
export function stagingOwner(name: string): StagingOwner | null {
  const m = STAGING_NAME.exec(name);
  return m ? { pid: Number(m[1]), start: m[2] === 'x' ? null : m[2]!, boot: m[3] ?? null } : null;
}

/**
 * Is the clone that made a staging directory still running? Where /proc
 * tells (Linux): it ran since the last boot (pids and start times repeat
 * after a reboot), its pid is not a zombie (killed, not yet reaped: it
 * writes nothing more), and the process is the same one, as its start time
 * shows (a recycled pid is another process). Elsewhere: its pid exists.
 */
export function ownerAlive(owner: StagingOwner): boolean {
  if (owner.boot !== null) {
    const boot = bootId();
    if (boot !== null && boot !== owner.boot) return false;
  }
  if (!pidExists(owner.pid)) return false;
  const stat = procStat(owner.pid);
  if (stat === null) return true; // no /proc: the pid exists, trust it
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return owner.start === null || stat.start === owner.start;
}

/** A process's start time (clock ticks since boot, /proc/<pid>/stat field 22), or null where /proc has none. */
export function startTime(pid: number): string | null {
  return procStat(pid)?.start ?? null;
}

/** State (field 3) and start time (field 22) of /proc/<pid>/stat, or null where /proc has none. */
function procStat(pid: number): { state: string; start: string | null } | null {
  let stat;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // Field 2 (the command) is in parentheses and may hold spaces: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const start = fields[19];
  return { state: fields[0] ?? '', start: start && /^\d+$/.test(start) ? start : null };
}

let cachedBootId: string | null | undefined;

/** The first 8 hex digits of this boot's id (Linux), or null; read once. */
export function bootId(): string | null {
  if (cachedBootId === undefined) {
    try {
      const id = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim().slice(0, 8);
      cachedBootId = /^[0-9a-f]{8}$/.test(id) ? id : null;
    } catch {
      cachedBootId = null;
    }
  }
  return cachedBootId;
}

function exists(path: string | Buffer): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function rmQuietly(path: string | Buffer): void {
  try {
    rmSync(path, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    // best effort: the original failure is what the user needs to see
  }
}

/** rmdir each directory in order (deepest first), stopping at the first that is not empty or not ours. */
/**
 * mkdir -p returning what it created, deepest first. Not mkdirSync's recursive
 * mode: on Node 20 that spins forever at 100% CPU where mkdir fails with ENOENT
 * although the parent exists (under /proc or /sys); here that is one error.
 */
function makeParents(dir: string): string[] {
  const missing: string[] = [];
  for (let d = dir; !exists(d); d = dirname(d)) {
    missing.push(d);
    if (dirname(d) === d) break;
  }
  const made: string[] = [];
  try {
    for (const d of [...missing].reverse()) {
      mkdirSync(d);
      made.unshift(d);
    }
  } catch (err) {
    removeDirs(made);
    throw err;
  }
  return made;
}

function removeDirs(dirs: string[]): void {
  for (const d of dirs) {
    try {
      rmdirSync(d);
    } catch {
      return;
    }
  }
}
