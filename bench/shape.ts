/**
 * Shaped network mode (`--shape 1gbit|100mbit`): the whole run re-executes in a
 * network namespace of its own (`unshare -n`), where loopback is brought up with
 * a token-bucket (tbf) qdisc, so every server (snapclone, git daemon, peers) and
 * every client talk over a rate-limited loopback. netem is not available on these
 * machines, so there is no added delay.
 *
 * tbf sits on lo's egress, which carries both directions of every connection: a
 * clone's requests and its (much larger) answers share the one rate.
 */
import { execFileSync, spawn } from 'node:child_process';

/** rate for tc, and a burst of at least one 64 KiB loopback GSO segment and rate/HZ (HZ >= 250). */
export const SHAPES: Record<string, { rate: string; burst: string }> = {
  '1gbit': { rate: '1gbit', burst: '1mb' },
  '100mbit': { rate: '100mbit', burst: '256kb' },
};

export function checkShape(shape: string): void {
  if (!SHAPES[shape]) throw new Error(`--shape takes ${Object.keys(SHAPES).join(' or ')}, not ${shape}`);
}

/** Run this script again with the same arguments inside `unshare -n`, marked --in-shape; resolves with its exit code. */
export function reexecShaped(shape: string, argv: string[]): Promise<number> {
  const script = process.argv[1]!;
  const child = spawn('unshare', ['-n', '--', process.execPath, script, ...argv, '--in-shape', shape], { stdio: 'inherit' });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** Inside the namespace: lo up, with the shape's tbf. Returns the qdisc as tc shows it. */
export function shapeLoopback(shape: string): string {
  const s = SHAPES[shape]!;
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  execFileSync('tc', ['qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', s.rate, 'burst', s.burst, 'latency', '50ms']);
  return execFileSync('tc', ['qdisc', 'show', 'dev', 'lo'], { encoding: 'utf8' }).trim();
}
