import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localUtcOffset, tzifOffsetAt, zoneFile } from '../../src/util/utc-offset.js';

/** What the C library says (`date +%z`), in minutes east of UTC. */
function dateSays(tz: string | undefined, at: number): number {
  const env = { ...process.env };
  if (tz === undefined) delete env.TZ;
  else env.TZ = tz;
  const z = execFileSync('date', ['-d', `@${at}`, '+%z'], { env, encoding: 'utf8' }).trim();
  const m = /^([+-])(\d\d)(\d\d)$/.exec(z)!;
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]));
}

const ZONES = ['UTC', 'Etc/UTC', 'Europe/Paris', 'America/New_York', 'America/St_Johns', 'Asia/Kolkata', 'Asia/Kathmandu', 'Australia/Lord_Howe', 'Pacific/Chatham', 'America/Sao_Paulo', 'Africa/Casablanca', 'Etc/GMT+5', 'Etc/GMT-14'];
// Winter and summer, before the first transition, around a DST change, and far past the last transition (a footer rule).
const TIMES = [Date.UTC(2026, 0, 15) / 1000, Date.UTC(2026, 6, 15) / 1000, -3e9, Date.UTC(2026, 2, 29, 0, 59, 59) / 1000, Date.UTC(2026, 2, 29, 1) / 1000, Date.UTC(2061, 6, 1) / 1000];

test('tzifOffsetAt agrees with date +%z wherever it answers, and answers for fixed zones and dated transitions', () => {
  let answered = 0;
  for (const zone of ZONES) {
    const tzif = readFileSync(`/usr/share/zoneinfo/${zone}`);
    for (const t of TIMES) {
      const got = tzifOffsetAt(tzif, t);
      if (got === null) continue; // DST rules past the last transition: Date decides
      answered++;
      assert.equal(got, dateSays(zone, t), `${zone} at ${t}`);
    }
    // Every zone answers for this year (within its transitions, or a fixed footer).
    assert.notEqual(tzifOffsetAt(tzif, Date.UTC(2026, 0, 15) / 1000), null, zone);
  }
  assert.ok(answered > ZONES.length * 3, `only ${answered} answers`);
});

test('localUtcOffset follows $TZ like the C library, falling back to Date for POSIX rules and odd values', () => {
  const saved = process.env.TZ;
  try {
    for (const tz of [undefined, '', 'UTC', ':Europe/Paris', 'Asia/Kathmandu', 'America/New_York', '/usr/share/zoneinfo/Pacific/Chatham', 'EST5EDT', 'ABC-3', 'NoSuch/Zone', '../../etc/passwd']) {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
      for (const t of TIMES.slice(0, 2)) assert.equal(localUtcOffset(t), dateSays(tz, t), `TZ=${tz} at ${t}`);
    }
  } finally {
    if (saved === undefined) delete process.env.TZ;
    else process.env.TZ = saved;
  }
});

test('zoneFile: unset is /etc/localtime, a name is under TZDIR, a path is itself, empty and ".." are not files', () => {
  assert.equal(zoneFile(undefined), '/etc/localtime');
  assert.equal(zoneFile('Europe/Paris', '/z'), '/z/Europe/Paris');
  assert.equal(zoneFile(':Europe/Paris', '/z'), '/z/Europe/Paris');
  assert.equal(zoneFile('/x/y'), '/x/y');
  assert.equal(zoneFile(''), null);
  assert.equal(zoneFile('../etc/passwd'), null);
});

test('tzifOffsetAt gives null, never a wrong offset, for bytes that are not a whole TZif file', () => {
  const good = readFileSync('/usr/share/zoneinfo/Europe/Paris');
  const t = Date.UTC(2026, 0, 15) / 1000;
  assert.equal(tzifOffsetAt(Buffer.from('not a zone file at all, not even close to one........'), t), null);
  for (const cut of [10, 44, 100, good.length - 30]) assert.equal(tzifOffsetAt(good.subarray(0, cut), t), null, `cut at ${cut}`);
  // A file that is not TZif falls back to Date through localUtcOffset.
  const dir = mkdtempSync(join(tmpdir(), 'tz-'));
  writeFileSync(join(dir, 'Bogus'), 'garbage');
  const saved = process.env.TZ;
  try {
    process.env.TZ = join(dir, 'Bogus');
    assert.equal(localUtcOffset(t), -new Date(t * 1000).getTimezoneOffset() || 0);
  } finally {
    if (saved === undefined) delete process.env.TZ;
    else process.env.TZ = saved;
  }
});
