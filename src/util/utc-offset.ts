/**
 * The local UTC offset, for the reflog lines a clone writes, read from the
 * zone file the C library reads (TZif, RFC 8536), because under Bun the first
 * Date#getTimezoneOffset loads ICU's time-zone data: ~5 ms of CPU on every
 * editable clone. Whatever this does not read with certainty (a POSIX rule in
 * $TZ, a zone whose rules after its last transition have daylight saving
 * time, a file that is not TZif) falls back to Date.
 */
import { readFileSync } from 'node:fs';

/** Minutes east of UTC at `unixSeconds`, or null when `tzif` does not say it plainly. */
export function tzifOffsetAt(tzif: Uint8Array, unixSeconds: number): number | null {
  const b = Buffer.from(tzif.buffer, tzif.byteOffset, tzif.byteLength);
  const v1 = tzifHeader(b, 0);
  if (!v1) return null;
  // Version 2+ repeats the data with 64-bit times after the 32-bit block, then a footer rule.
  let h = v1;
  let timeSize = 4;
  let footer: string | null = null;
  if (b[4]! >= 0x32) {
    const v2 = tzifHeader(b, v1.end);
    if (!v2) return null;
    h = v2;
    timeSize = 8;
    const nl = b.indexOf(0x0a, v2.end + 1);
    if (b[v2.end] !== 0x0a || nl < 0) return null;
    footer = b.toString('latin1', v2.end + 1, nl);
  }
  const times = h.start;
  const indexes = times + h.timecnt * timeSize;
  const types = indexes + h.timecnt;
  const timeAt = (k: number) => (timeSize === 8 ? Number(b.readBigInt64BE(times + k * 8)) : b.readInt32BE(times + k * 4));
  const offsetOf = (type: number) => (type < h.typecnt ? Math.trunc(b.readInt32BE(types + type * 6) / 60) || 0 : null);
  if (h.timecnt === 0 || unixSeconds < timeAt(0)) return h.typecnt > 0 ? offsetOf(0) : null;
  if (unixSeconds >= timeAt(h.timecnt - 1) && footer) return footerOffset(footer);
  let lo = 0; // the last transition at or before unixSeconds
  for (let hi = h.timecnt - 1; lo < hi; ) {
    const mid = (lo + hi + 1) >> 1;
    if (timeAt(mid) <= unixSeconds) lo = mid;
    else hi = mid - 1;
  }
  return offsetOf(b[indexes + lo]!);
}

interface TzifHeader {
  timecnt: number;
  typecnt: number;
  /** Where the transition times start. */
  start: number;
  /** Just past this block's data. */
  end: number;
}

function tzifHeader(b: Buffer, at: number): TzifHeader | null {
  if (b.length < at + 44 || b.toString('latin1', at, at + 4) !== 'TZif') return null;
  const [isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt] = [0, 1, 2, 3, 4, 5].map((k) => b.readUInt32BE(at + 20 + k * 4)) as [number, number, number, number, number, number];
  const timeSize = at === 0 ? 4 : 8;
  const end = at + 44 + timecnt * (timeSize + 1) + typecnt * 6 + charcnt + leapcnt * (timeSize + 4) + isstdcnt + isutcnt;
  if (end > b.length || typecnt === 0) return null;
  return { timecnt, typecnt, start: at + 44, end };
}

/** A footer rule with no daylight saving time ("UTC0", "<+0530>-5:30", "JST-9"): its fixed offset; anything else null. */
function footerOffset(rule: string): number | null {
  const m = /^(?:[A-Za-z]{3,}|<[A-Za-z0-9+-]{3,}>)([+-]?)(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?$/.exec(rule);
  if (!m) return null;
  const west = Number(m[2]) * 60 + Number(m[3] ?? 0) + (m[4] ? Math.trunc(Number(m[4]) / 60) : 0);
  return (m[1] === '-' ? west : -west) || 0; // POSIX counts hours west of UTC; never -0
}

/** The zone file the C library reads for $TZ (unset: /etc/localtime), or null when $TZ is not a zone file name. */
export function zoneFile(tz: string | undefined, tzdir = process.env.TZDIR || '/usr/share/zoneinfo'): string | null {
  if (tz === undefined) return '/etc/localtime';
  const name = tz.startsWith(':') ? tz.slice(1) : tz;
  if (name === '' || name.split('/').includes('..')) return null; // "" is UTC to glibc, and Date agrees
  return name.startsWith('/') ? name : `${tzdir}/${name}`;
}

/** Minutes east of UTC here at `unixSeconds`, as `date +%z` says it. */
export function localUtcOffset(unixSeconds: number): number {
  const file = zoneFile(process.env.TZ);
  if (file) {
    try {
      const offset = tzifOffsetAt(readFileSync(file), unixSeconds);
      if (offset !== null) return offset;
    } catch {
      // not a readable zone file: Date decides
    }
  }
  return -new Date(unixSeconds * 1000).getTimezoneOffset() || 0;
}
