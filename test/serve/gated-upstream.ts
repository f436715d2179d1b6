/**
 * An upstream reached over "ssh" that a test can hold: GIT_SSH_COMMAND is a
 * script that runs the remote command (git-upload-pack) locally, but only once
 * the gate is open. A build that talks to the upstream while the gate is shut
 * waits there, so a test can act while a job is running, without timing.
 * Sets process.env for the whole test file: use it in a file of its own.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { call } from './helpers.js';

export interface Gate {
  /** ssh:// URL of a local repository, reached through the gate. */
  url(repoDir: string): string;
  shut(): void;
  open(): void;
  readonly isShut: boolean;
}

export function gatedSsh(dir: string): Gate {
  const gate = join(dir, 'gate-shut');
  const script = join(dir, 'fake-ssh.sh');
  writeFileSync(
    script,
    [
      '#!/bin/sh',
      `while [ -e '${gate}' ]; do sleep 0.02; done`,
      'for last; do :; done', // the remote command is the last argument
      'exec sh -c "$last"',
      '',
    ].join('\n'),
  );
  process.env.GIT_SSH_COMMAND = `sh '${script}'`;
  process.env.GIT_SSH_VARIANT = 'simple'; // no OpenSSH options, no -G probe
  return {
    url: (repoDir) => `ssh://gatehost${repoDir}`,
    shut: () => writeFileSync(gate, ''),
    open: () => rmSync(gate, { force: true }),
    get isShut() {
      return existsSync(gate);
    },
  };
}

/** Wait until job `id` runs (it is held at the gate), failing if it ends first. */
export async function waitRunning(base: string, id: number): Promise<void> {
  for (;;) {
    const j = (await call(base, 'GET', `/v1/jobs/${id}`)).json;
    if (j.state === 'running') return;
    assert.equal(j.state, 'queued', `job ${id} ended early: ${j.error}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
