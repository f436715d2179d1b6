/**
 * .git/packed-refs and reflog lines, byte for byte as `git clone` writes them,
 * so a snapclone'd repository is indistinguishable from a cloned one.
 */
import { invalid } from '../util/errors.js';
import { isOid } from '../util/hash.js';

/**
 * "peeled fully-peeled" promises readers that every annotated tag carries a ^
 * line peeled all the way to a non-tag object; "sorted" lets them binary-search.
 * The trailing space is part of git's header.
 */
export const PACKED_REFS_HEADER = '# pack-refs with: peeled fully-peeled sorted \n';

export interface PackedRef {
  name: string; // full name, e.g. refs/tags/v1.0
  oid: string; // hex
  peeled?: string; // for annotated tags: the non-tag object the tag chain ends at
}

export interface Ident {
  name: string;
  email: string;
}

const ZERO_OID = '0'.repeat(40);

function nameProblem(name: string): boolean {
  return name.length === 0 || /[\x00-\x20\x7f]/.test(name);
}

export function formatPackedRefs(refs: readonly PackedRef[]): string {
  // Byte order of the UTF-8 names, as git's strcmp sees them.
  const sorted = refs.map((r) => ({ r, key: Buffer.from(r.name, 'utf8') })).sort((a, b) => Buffer.compare(a.key, b.key));
  let out = PACKED_REFS_HEADER;
  for (let i = 0; i < sorted.length; i++) {
    const { r, key } = sorted[i]!;
    if (nameProblem(r.name)) throw invalid(`packed-refs: bad ref name ${JSON.stringify(r.name)}`);
    if (i > 0 && key.equals(sorted[i - 1]!.key)) throw invalid(`packed-refs: ${r.name} appears twice`);
    if (!isOid(r.oid)) throw invalid(`packed-refs: ${r.name} has a bad object id`);
    out += `${r.oid} ${r.name}\n`;
    if (r.peeled !== undefined) {
      if (!isOid(r.peeled)) throw invalid(`packed-refs: ${r.name} has a bad peeled object id`);
      out += `^${r.peeled}\n`;
    }
  }
  return out;
}

/** "+HHMM"/"-HHMM" for an offset in minutes east of UTC (the opposite sign of Date#getTimezoneOffset). */
export function formatTimezone(offsetMinutes: number): string {
  if (!Number.isInteger(offsetMinutes) || Math.abs(offsetMinutes) >= 100 * 60) throw invalid(`bad timezone offset ${offsetMinutes}`);
  const a = Math.abs(offsetMinutes);
  const hhmm = String(Math.floor(a / 60)).padStart(2, '0') + String(a % 60).padStart(2, '0');
  return (offsetMinutes < 0 ? '-' : '+') + hhmm;
}

/**
 * git's reflog message cleanup: whitespace runs (newlines included) become one
 * space, leading and trailing whitespace goes.
 */
export function cleanReflogMessage(message: string): string {
  // git's isspace() is only SP, HT, LF and CR (not VT, FF or Unicode spaces).
  return message.replace(/[ \t\n\r]+/g, ' ').replace(/^ | $/g, '');
}

/** One line of .git/logs/<ref>. An empty message means no tab either, as in git. */
export function formatReflogLine(
  oldOid: string | null,
  newOid: string,
  ident: Ident,
  timeSec: number,
  tzOffsetMinutes: number,
  message: string,
): string {
  const old = oldOid ?? ZERO_OID;
  if (!isOid(old) || !isOid(newOid)) throw invalid('reflog: bad object id');
  if (/[<>\n\0]/.test(ident.name) || /[<>\n\0]/.test(ident.email)) throw invalid('reflog: ident contains <, >, NUL or a newline');
  if (!Number.isSafeInteger(timeSec) || timeSec < 0) throw invalid(`reflog: bad time ${timeSec}`);
  const msg = cleanReflogMessage(message);
  return `${old} ${newOid} ${ident.name} <${ident.email}> ${timeSec} ${formatTimezone(tzOffsetMinutes)}${msg ? `\t${msg}` : ''}\n`;
}
