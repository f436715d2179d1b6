/** Hide credentials in URLs before anything is logged or stored: scheme://user:secret@host -> scheme://user:***@host. */
export function redactUrl(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^/\s:@]*):[^@\s/]*@/gi, '$1:***@');
}

/** True if a URL carries a password (which snapclone refuses to store). */
export function hasEmbeddedPassword(url: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\/[^/\s@]*:[^@\s/]*@/i.test(url);
}
