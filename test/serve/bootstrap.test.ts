/**
 * Ephemeral workers (issue 8): a worker with an empty data dir that shares only the
 * artifact store and the database with the worker that built a repository bootstraps
 * its mirror from the stored history levels and the latest refs snapshot, so its first
 * sync fetches only the objects pushed since; the clone it publishes is git clone's.
 * A damaged level falls back to the plain fetch and leaves no half mirror behind.
 * Real git, real SQLite, a real server and the real CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { addAndBuild, commit, git, makeUpstream, startTestServer, stderrLog, tempDir } from './helpers.js';
import { cliOk } from '../e2e/harness.js';
import { compareClones } from '../support/compare.js';
import { git as hermeticGit, gitText } from '../support/git.js';
import { SqliteMetadataStore } from '../../src/metadata/sqlite/sqlite-store.js';
import { LocalArtifactStore } from '../../src/storage/local/local-store.js';
import { SyncService } from '../../src/serve/sync.js';
import { getLevels } from '../../src/serve/records.js';
import { parseIdx } from '../../src/git/idx.js';
import type { MetadataStore } from '../../src/metadata/metadata-store.js';

async function runSync(worker: SyncService, meta: MetadataStore, repo: string): Promise<void> {
  const now = Date.now();
  const job = await meta.createJob({ repo, kind: 'sync', ref: null, state: 'running', phase: 'test', error: null, commit: null, createdAt: now, startedAt: now, finishedAt: null });
  try {
    await worker.run(job, () => {});
    await meta.updateJob(job.id, { state: 'succeeded', finishedAt: Date.now() });
  } catch (err) {
    await meta.updateJob(job.id, { state: 'failed', error: String(err), finishedAt: Date.now() });
    throw err;
  }
}

/** Pack name -> object count of every pack in a bare repository. */
function packsOf(repo: string): Map<string, number> {
  const dir = join(repo, 'objects', 'pack');
  const out = new Map<string, number>();
  for (const f of readdirSync(dir)) if (f.endsWith('.idx')) out.set(f.slice(0, -4), parseIdx(readFileSync(join(dir, f))).count);
  return out;
}

function localConfig(repo: string): string {
  return gitText(['config', '--local', '--list'], { cwd: repo });
}

/** Objects the upstream has now that none of `before` (its ref tips then) reach. */
function newObjects(upstream: string, before: string[]): number {
  return git(upstream, ['rev-list', '--objects', '--all', '--not', ...before]).split('\n').filter(Boolean).length;
}

function tips(upstream: string): string[] {
  return git(upstream, ['for-each-ref', '--format=%(objectname)']).split('\n').filter(Boolean);
}

test('a fresh worker bootstraps its mirror from the store, fetches only the new objects, and publishes what git clone gives', async () => {
  const work = tempDir();
  const up = makeUpstream(work);
  const s = await startTestServer({ pollSeconds: 0 });
  const meta = new SqliteMetadataStore(join(s.dataDir, 'snapclone.db'));
  try {
    git(up.dir, ['branch', 'gone']);
    await addAndBuild(s.url, up.dir, 'boot');
    const before = tips(up.dir);
    git(up.dir, ['branch', '-D', 'gone']); // the bootstrapped ref goes at the fetch (--prune)
    commit(up.dir, { 'src/a.txt': 'changed\n', 'docs/new.md': 'new\n'.repeat(50) }, 'third');
    git(up.dir, ['tag', '-a', '-m', 'v2', 'v2']);
    git(up.dir, ['branch', '-f', 'dev', 'main']);
    const expected = newObjects(up.dir, before);
    assert.ok(expected >= 5, `the push adds objects (${expected})`);
    const levelPacks = new Set((await getLevels(meta, 'boot', up.dir)).levels.flatMap((l) => l.packs.map((p) => p.name)));
    assert.ok(levelPacks.size > 0, 'the first build stored history levels');

    // A second worker: its own empty data dir, the same store and database.
    const worker = new SyncService(tempDir('snapclone-worker-'), new LocalArtifactStore(join(s.dataDir, 'artifacts')), meta);
    await runSync(worker, meta, 'boot');
    const mirror = worker.mirrorDir('boot');
    const packs = packsOf(mirror);
    for (const name of levelPacks) assert.ok(packs.has(name), `level pack ${name} is in the bootstrapped mirror`);
    const fetched = [...packs].filter(([name]) => !levelPacks.has(name));
    assert.equal(fetched.length, 1, `one fetched pack besides the levels: ${JSON.stringify([...packs])}`);
    assert.equal(fetched[0]![1], expected, 'the fetch brought exactly the objects pushed since the first build');
    assert.ok(stderrLog.join('').includes('boot: mirror bootstrapped from the store'), 'the bootstrap is logged');

    hermeticGit(['fsck', '--connectivity-only', '--no-progress'], { cwd: mirror });
    assert.equal(localConfig(mirror), localConfig(join(s.dataDir, 'mirrors', 'boot.git')), 'the mirror config is the one a plain mirror has');
    assert.equal(gitText(['for-each-ref', '--format=%(objectname) %(refname)'], { cwd: mirror }), gitText(['for-each-ref', '--format=%(objectname) %(refname)'], { cwd: up.dir }));
    assert.deepEqual(readdirSync(dirname(mirror)), ['boot.git'], 'no scratch mirror is left');

    // What the second worker published clones exactly as git clone does.
    hermeticGit(['clone', '-q', up.dir, 'g'], { cwd: work });
    await cliOk(s.url, ['clone', 'boot', join(work, 's')]);
    assert.deepEqual(compareClones(join(work, 'g'), join(work, 's'), { mode: 'editable', ignoreConfigKeys: ['remote.origin.url'] }), []);
  } finally {
    await meta.close();
    await s.close();
  }
});

test('a damaged history level: the bootstrap gives up, leaves no mirror behind, and the plain fetch builds', async () => {
  const work = tempDir();
  const up = makeUpstream(work);
  const s = await startTestServer({ pollSeconds: 0 });
  const meta = new SqliteMetadataStore(join(s.dataDir, 'snapclone.db'));
  try {
    await addAndBuild(s.url, up.dir, 'damaged');
    commit(up.dir, { 'src/c.txt': 'c\n' }, 'third');
    const store = new LocalArtifactStore(join(s.dataDir, 'artifacts'));
    const level = (await getLevels(meta, 'damaged', up.dir)).levels[0]!.packs[0]!;
    // Same size, other bytes: only a hash of what is read finds it.
    const path = store.localPath(level.pack.digest);
    const good = readFileSync(path);
    const bytes = Buffer.from(good);
    bytes[bytes.length - 30] ^= 0xff;
    chmodSync(path, 0o644);
    writeFileSync(path, bytes);

    const worker = new SyncService(tempDir('snapclone-worker-'), store, meta);
    const logged = stderrLog.length;
    await runSync(worker, meta, 'damaged');
    const log = stderrLog.slice(logged).join('');
    assert.match(log, /damaged: could not bootstrap the mirror from the store \(stored artifact [0-9a-f]{64} read back as .* SHA-256/);
    assert.doesNotMatch(log, /mirror bootstrapped/);
    const mirror = worker.mirrorDir('damaged');
    assert.deepEqual(readdirSync(dirname(mirror)), ['damaged.git'], 'the partial mirror is gone');
    const packs = [...packsOf(mirror).values()];
    assert.deepEqual(packs, [newObjects(up.dir, [])], 'the fallback fetched everything, as a mirror without bootstrap does');
    hermeticGit(['fsck', '--connectivity-only', '--no-progress'], { cwd: mirror });
    assert.ok(existsSync(join(mirror, 'HEAD')));

    writeFileSync(path, good); // the clone downloads that level too
    hermeticGit(['clone', '-q', up.dir, 'g'], { cwd: work });
    await cliOk(s.url, ['clone', 'damaged', join(work, 's')]);
    assert.deepEqual(compareClones(join(work, 'g'), join(work, 's'), { mode: 'editable', ignoreConfigKeys: ['remote.origin.url'] }), []);
  } finally {
    await meta.close();
    await s.close();
  }
});
