/**
 * Hide credentials before anything is logged or stored:
 * scheme://user:secret@host -> scheme://user:***@host, and the values of query
 * parameters whose names say they carry a secret (?token=..., &access_key=...,
 * ?sig=...) -> ***.
 */
export function redactUrl(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^/\s:@]*):[^\s/]*@/gi, '$1:***@') // greedy: an unencoded @ in the password goes too
    .replace(SECRET_PARAM, '$1***');
}

/** A query parameter (after ? or &) whose name contains a secret-ish word, up to its value. */
const SECRET_PARAM = /([?&][^=&#\s]*(?:token|key|secret|passw|pwd|auth|sig|credential|session)[^=&#\s]*=)[^&#\s]*/gi;

/** True if a URL carries a password (which snapclone refuses to store). */
export function hasEmbeddedPassword(url: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\/[^/\s@]*:[^@\s/]*@/i.test(url);
}
