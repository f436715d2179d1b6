/**
 * Ref name rules (a strict subset of git-check-ref-format): what the builder
 * publishes and what a client accepts from a manifest.
 */
const BAD_CHARS = /[\x00-\x20\x7f~^:?*[\\]/;

export function isValidRefName(name: string): boolean {
  if (name.length === 0 || name.length > 1024) return false;
  if (BAD_CHARS.test(name)) return false;
  if (name.startsWith('/') || name.endsWith('/') || name.endsWith('.') || name.includes('//')) return false;
  if (name.includes('..') || name.includes('@{') || name === '@') return false;
  for (const part of name.split('/')) {
    if (part.startsWith('.') || part.endsWith('.lock')) return false;
  }
  return true;
}

/** A short branch or tag name as given on a command line (no refs/ prefix needed). */
export function isValidShortRef(name: string): boolean {
  return isValidRefName(`refs/heads/${name}`);
}
