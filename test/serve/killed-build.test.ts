/**
 * A server killed (SIGKILL) in the middle of a commit build publishes nothing
 * partial: after a restart every mode still serves the previous commit whole,
 * and the next sync builds the new one. The build is held inside by a `git`
 * wrapper first on the server's PATH: while the gate file exists, a
 * `git pack-objects` run in a mirror waits (after touching the `held` file).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { commit, makeUpstream, tempDir } from './helpers.js';
import { getJson, spawnServe, until } from './process-helpers.js';
import { cliOk } from '../e2e/harness.js';
import { compareClones } from '../support/compare.js';
import { git as hermeticGit } from '../support/git.js';
import { manifestArtifacts, parseManifest } from '../../src/clonepack/manifest.js';

const MODES = ['shallow', 'files', 'full'] as const;

function gatedGit(dir: string): { env: Record<string, string>; gate: string; held: string } {
  const realGit = execFileSync('sh', ['-c', 'command -v git']).toString().trim();
  const gate = join(dir, 'gate');
  const held = join(dir, 'held');
  const bin = join(dir, 'bin');
  execFileSync('mkdir', ['-p', bin]);
  writeFileSync(
    join(bin, 'git'),
    [
      '#!/bin/sh',
      'case "$PWD" in */mirrors/*)',
      '  for a in "$@"; do',
      `    if [ "$a" = pack-objects ]; then`,
      `      if [ -e '${gate}' ]; then : > '${held}'; while [ -e '${gate}' ]; do sleep 0.05; done; fi`,
      '      break',
      '    fi',
      '  done;;',
      'esac',
      `exec '${realGit}' "$@"`,
      '',
    ].join('\n'),
  );
  chmodSync(join(bin, 'git'), 0o755);
  return { env: { PATH: `${bin}:${process.env.PATH}` }, gate, held };
}

async function post(url: string, body: unknown) {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: (await r.json()) as any };
}

async function assertWhole(url: string, repo: string, commitOid: string): Promise<void> {
  for (const mode of MODES) {
    const r = await getJson(`${url}/v1/repos/${repo}/resolve?mode=${mode}`);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.commit, commitOid, mode);
    const m = parseManifest(Buffer.from(await (await fetch(`${url}/v1/artifacts/${r.json.manifest.digest}`)).arrayBuffer()));
    for (const a of manifestArtifacts(m)) assert.equal((await fetch(`${url}/v1/artifacts/${a.digest}`, { method: 'HEAD' })).status, 200, `${mode} names a missing ${a.digest}`);
  }
}

test('a server killed in the middle of a build publishes nothing partial; after a restart the next sync recovers', async () => {
  const work = tempDir();
  const up = makeUpstream(work);
  const dataDir = join(work, 'data');
  const g = gatedGit(work);
  let server = spawnServe(['serve', '--data-dir', dataDir, '--port', '0'], { env: g.env });
  try {
    let url = await server.ready;
    const add = await post(`${url}/v1/repos`, { url: up.dir, name: 'killed' });
    assert.equal(add.status, 201);
    await until('the first build ends', async () => (await getJson(`${url}/v1/jobs/${add.json.job.id}`)).json.state === 'succeeded', 60_000);
    await assertWhole(url, 'killed', up.head);

    const next = commit(up.dir, { 'big/new.txt': 'new\n'.repeat(1000), 'src/a.txt': 'changed\n' }, 'third');
    writeFileSync(g.gate, '');
    const job = await post(`${url}/v1/repos/killed/sync`, {});
    await until('the build is held in pack-objects', () => existsSync(g.held), 60_000);
    server.child.kill('SIGKILL');
    await server.exited;
    rmSync(g.gate); // the orphaned wrapper finishes into a scratch dir nobody publishes

    server = spawnServe(['serve', '--data-dir', dataDir, '--port', '0'], { env: g.env });
    url = await server.ready;
    const dead = (await getJson(`${url}/v1/jobs/${job.json.job.id}`)).json;
    assert.equal(dead.state, 'failed', 'the killed job is marked failed on restart');
    await assertWhole(url, 'killed', up.head);
    assert.deepEqual(readdirSync(join(dataDir, 'tmp')).filter((n) => n.startsWith('sync-')), [], 'the killed build\'s scratch dir is removed at start');

    const again = await post(`${url}/v1/repos/killed/sync`, {});
    await until('the next sync ends', async () => ['succeeded', 'failed'].includes((await getJson(`${url}/v1/jobs/${again.json.job.id}`)).json.state), 60_000);
    assert.equal((await getJson(`${url}/v1/jobs/${again.json.job.id}`)).json.state, 'succeeded');
    await assertWhole(url, 'killed', next);
    hermeticGit(['clone', '-q', up.dir, 'g'], { cwd: work });
    await cliOk(url, ['clone', 'killed', join(work, 's')]);
    assert.deepEqual(compareClones(join(work, 'g'), join(work, 's'), { mode: 'editable', ignoreConfigKeys: ['remote.origin.url'] }), []);
  } finally {
    server.child.kill('SIGKILL');
    await server.exited;
  }
});
