/**
 * Git config files (.git/config), written the way `git config` writes them:
 *
 *   [core]
 *   \trepositoryformatversion = 0
 *   [remote "origin"]
 *   \turl = https://example.com/repo.git
 *
 * Section and variable names are case-insensitive (readers lowercase them);
 * like `git config`, we write them as given. Subsection names are
 * case-sensitive.
 */
import { invalid } from '../util/errors.js';

export interface ConfigSection {
  name: string;
  subsection?: string;
  entries: [key: string, value: string][];
}

const SECTION_NAME = /^[A-Za-z0-9-]+$/;
const VARIABLE_NAME = /^[A-Za-z][A-Za-z0-9-]*$/;

export function formatGitConfig(sections: readonly ConfigSection[]): string {
  let out = '';
  for (const s of sections) {
    if (!SECTION_NAME.test(s.name)) throw invalid(`config: bad section name ${JSON.stringify(s.name)}`);
    out += s.subsection === undefined ? `[${s.name}]\n` : `[${s.name} ${quoteSubsection(s.subsection)}]\n`;
    for (const [key, value] of s.entries) {
      if (!VARIABLE_NAME.test(key)) throw invalid(`config: bad variable name ${JSON.stringify(key)}`);
      out += `\t${key} = ${quoteValue(value)}\n`;
    }
  }
  return out;
}

function quoteSubsection(sub: string): string {
  if (/[\n\0]/.test(sub)) throw invalid('config: subsection name contains a newline or NUL');
  return `"${sub.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * Escape \, ", newline and tab; wrap in double quotes when unquoted reading
 * would lose something: leading or trailing spaces (trimmed), ';' or '#'
 * (comments), or a CR (git's reader takes an unquoted CR for whitespace).
 */
function quoteValue(value: string): string {
  if (value.includes('\0')) throw invalid('config: value contains NUL');
  const quote = value.startsWith(' ') || value.endsWith(' ') || /[;#\r]/.test(value) ? '"' : '';
  const escaped = value.replace(/[\\"\n\t]/g, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\${c}`));
  return quote + escaped + quote;
}
