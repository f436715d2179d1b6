/**
 * An upstream reached over "ssh" whose connections a test can hold, one by one.
 * GIT_SSH_COMMAND is a script that numbers each connection (1, 2, ...; mkdir is
 * atomic), waits before running the remote command while `hold-before-N`
 * exists and after it while `hold-after-N` exists (git waits for its ssh to
 * exit, so that holds the fetch or ls-remote), and, while armed, commits to the
 * upstream before each connection (an upstream pushed to faster than it builds).
 * Sets process.env for the whole test file: use it in a file of its own.
 * (test/serve/gated-upstream.ts holds every connection at once; these tests
 * need to let a build's ls-remote and fetch through and hold what follows.)
 */
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface HeldUpstream {
  url(repoDir: string): string;
  /** Connections made so far. */
  connections(): number;
  holdBefore(n: number): void;
  holdAfter(n: number): void;
  release(n: number): void;
  /** Connection n is waiting at a hold. */
  waiting(n: number): boolean;
  /** Commit to `repoDir` before every connection from now on (null: stop). */
  commitOnConnect(repoDir: string | null): void;
}

export function heldSsh(dir: string): HeldUpstream {
  const script = join(dir, 'held-ssh.sh');
  const commitScript = join(dir, 'commit.sh');
  writeFileSync(
    script,
    [
      '#!/bin/sh',
      `d='${dir}'`,
      'i=1; while ! mkdir "$d/conn-$i" 2>/dev/null; do i=$((i+1)); done',
      'while [ -e "$d/hold-before-$i" ]; do touch "$d/waiting-$i"; sleep 0.02; done',
      `if [ -e "$d/commit-on-connect" ]; then sh '${commitScript}' "$(cat "$d/commit-on-connect")" "$i" >/dev/null 2>&1; fi`,
      'for last; do :; done', // the remote command is the last argument
      'sh -c "$last"; rc=$?',
      'while [ -e "$d/hold-after-$i" ]; do touch "$d/waiting-$i"; sleep 0.02; done',
      'exit $rc',
      '',
    ].join('\n'),
  );
  writeFileSync(
    commitScript,
    [
      '#!/bin/sh',
      'export GIT_AUTHOR_NAME=Pusher GIT_AUTHOR_EMAIL=p@example.invalid GIT_COMMITTER_NAME=Pusher GIT_COMMITTER_EMAIL=p@example.invalid',
      'export GIT_AUTHOR_DATE="$((1700100000 + $2)) +0000" GIT_COMMITTER_DATE="$((1700100000 + $2)) +0000"',
      'echo "push $2" > "$1/pushed.txt" && git -C "$1" add pushed.txt && git -C "$1" commit -q -m "push $2"',
      '',
    ].join('\n'),
  );
  process.env.GIT_SSH_COMMAND = `sh '${script}'`;
  process.env.GIT_SSH_VARIANT = 'simple';
  return {
    url: (repoDir) => `ssh://heldhost${repoDir}`,
    connections: () => readdirSync(dir).filter((f) => f.startsWith('conn-')).length,
    holdBefore: (n) => writeFileSync(join(dir, `hold-before-${n}`), ''),
    holdAfter: (n) => writeFileSync(join(dir, `hold-after-${n}`), ''),
    release: (n) => {
      rmSync(join(dir, `hold-before-${n}`), { force: true });
      rmSync(join(dir, `hold-after-${n}`), { force: true });
    },
    waiting: (n) => existsSync(join(dir, `waiting-${n}`)),
    commitOnConnect: (repoDir) => (repoDir ? writeFileSync(join(dir, 'commit-on-connect'), repoDir) : rmSync(join(dir, 'commit-on-connect'), { force: true })),
  };
}

/** Wait until `cond` holds (polling), failing after `timeoutMs`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
