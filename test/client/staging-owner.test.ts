/**
 * Telling a dead clone's staging directory from a running one's (staging.ts),
 * against real processes: a zombie (killed, not yet reaped) is dead, and a
 * directory made before the last boot is stale even if its pid and start
 * time happen to match a process running now.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { bootId, ownerAlive, stagingOwner, startTime } from '../../src/client/staging.js';

function state(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!;
  } catch {
    return null;
  }
}

test('a zombie owner (exited, not reaped by its parent) counts as dead', async (t) => {
  // sh starts a child that exits at once, then becomes `sleep`, which never reaps it.
  const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.after(() => parent.kill('SIGKILL'));
  const pid = Number(await new Promise<string>((r) => parent.stdout.once('data', (b: Buffer) => r(b.toString().trim()))));
  for (let i = 0; i < 400 && state(pid) !== 'Z'; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(state(pid), 'Z', 'the child is a zombie');
  const start = startTime(pid);
  assert.notEqual(start, null);
  assert.equal(ownerAlive({ pid, start, boot: bootId() }), false);
  assert.equal(ownerAlive({ pid, start: null, boot: null }), false);
  // A live process with the same facts is alive: the check is about the zombie.
  assert.equal(ownerAlive({ pid: parent.pid!, start: startTime(parent.pid!), boot: bootId() }), true);
});

test('a staging directory made before the last boot is stale even when its pid and start time match a running process', () => {
  const boot = bootId();
  assert.match(boot ?? '', /^[0-9a-f]{8}$/, 'Linux has a boot id');
  const start = startTime(process.pid)!;
  const other = boot === '00000000' ? '11111111' : '00000000';
  const now = stagingOwner(`.snapclone-staging-${process.pid}-${start}-${boot}-0123456789ab`);
  const before = stagingOwner(`.snapclone-staging-${process.pid}-${start}-${other}-0123456789ab`);
  assert.deepEqual(now, { pid: process.pid, start, boot });
  assert.equal(ownerAlive(now!), true);
  assert.equal(ownerAlive(before!), false);
  // Names made without a boot id (older clients) still parse, and are judged by pid and start time.
  const old = stagingOwner(`.snapclone-staging-${process.pid}-${start}-0123456789ab`);
  assert.deepEqual(old, { pid: process.pid, start, boot: null });
  assert.equal(ownerAlive(old!), true);
});
