/**
 * Issue 7 on the serve side, against real upstreams, real HTTP and real SQLite:
 * two-phase publish (a shallow resolve answers before the full one exists), what
 * a resolve says while a newer tip builds, force push, branch delete, a new tag
 * on a built commit, the no-op sync's write budget, and older manifests staying
 * whole after the history levels are compacted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { addAndBuild, call, commit, git, makeUpstream, startTestServer, tempDir, waitJob } from './helpers.js';
import { cliOk } from '../e2e/harness.js';
import { compareClones } from '../support/compare.js';
import { git as hermeticGit } from '../support/git.js';
import { StepGate } from './step-gate.js';
import { manifestOf, resolveMode as resolve } from './mode-helpers.js';
import { manifestArtifacts, type Manifest } from '../../src/clonepack/manifest.js';

const MODES = ['shallow', 'files', 'full'] as const;


async function sync(base: string, repo: string, body: Record<string, unknown> = {}) {
  const r = await call(base, 'POST', `/v1/repos/${repo}/sync`, body);
  assert.equal(r.status, 202, r.text);
  return r.json.job.id as number;
}

test('two-phase publish: shallow first, then files, then full; the full resolve is 202 with Retry-After until its step', async () => {
  const up = makeUpstream(tempDir());
  const gate = new StepGate();
  gate.shut('files');
  gate.shut('history');
  const s = await startTestServer({ buildOptions: { beforeStep: gate.hook } });
  try {
    const atFiles = gate.reached('files');
    const add = await call(s.url, 'POST', '/v1/repos', { url: up.dir, name: 'twophase' });
    assert.equal(add.status, 201, add.text);
    await atFiles;
    const shallow = await resolve(s.url, 'twophase', 'shallow');
    assert.equal(shallow.status, 200, shallow.text);
    assert.equal(shallow.json.commit, up.head);
    assert.equal(shallow.json.mode, 'shallow');
    assert.equal(shallow.json.newer, null);
    const m = await manifestOf(s.url, shallow.json.manifest.digest);
    assert.equal(m.mode, 'shallow');
    assert.deepEqual(m.historyPacks, []);
    assert.deepEqual(m.refs.map((r) => r.name), ['refs/heads/main'], 'a shallow manifest lists the ref and its followed tags only');
    for (const mode of ['files', 'full']) {
      const r = await resolve(s.url, 'twophase', mode);
      assert.equal(r.status, 202, `${mode}: ${r.text}`);
      assert.equal(r.headers.get('retry-after'), String(r.json.retryAfter));
      assert.equal(r.json.job.id, add.json.job.id);
    }

    const atHistory = gate.reached('history');
    gate.open('files');
    await atHistory;
    const files = await resolve(s.url, 'twophase', 'files');
    assert.equal(files.status, 200, files.text);
    assert.equal(files.json.mode, 'files');
    assert.equal((await resolve(s.url, 'twophase', 'shallow')).json.mode, 'shallow', 'the exact mode on a tie');
    assert.equal((await resolve(s.url, 'twophase', 'full')).status, 202);

    gate.open('history');
    assert.equal((await waitJob(s.url, add.json.job.id)).state, 'succeeded');
    for (const mode of MODES) {
      const r = await resolve(s.url, 'twophase', mode);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.commit, up.head);
      assert.equal(r.json.mode, mode, 'all three were published at one seq: the exact mode on a tie');
    }
    const full = await manifestOf(s.url, (await resolve(s.url, 'twophase', 'full')).json.manifest.digest);
    assert.deepEqual(full.refs.map((r) => r.name), ['refs/heads/dev', 'refs/heads/main', 'refs/tags/v1']);
    assert.ok(full.historyPacks.length > 0);
    assert.equal((await call(s.url, 'GET', '/v1/repos/twophase/resolve?mode=deep')).status, 400);
  } finally {
    await s.close();
  }
});

test('a resolve during a build gets the newest built commit and names the newer one; a clone then gets the old commit', async () => {
  const parent = tempDir();
  const up = makeUpstream(parent);
  const gate = new StepGate();
  const s = await startTestServer({ buildOptions: { beforeStep: gate.hook } });
  try {
    await addAndBuild(s.url, up.dir, 'busy');
    const next = commit(up.dir, { 'new.txt': 'new\n' }, 'third');
    gate.shut('shallow');
    const held = gate.reached('shallow');
    const job = await sync(s.url, 'busy');
    await held;
    for (const mode of MODES) {
      const r = await resolve(s.url, 'busy', mode);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.commit, up.head, mode);
      assert.deepEqual(r.json.newer, { commit: next, job }, mode);
    }
    const work = tempDir();
    const cloned = await cliOk(s.url, ['clone', '--quiet', 'busy', join(work, 'old')]);
    assert.equal(git(join(work, 'old'), ['rev-parse', 'HEAD']), up.head);
    // Told so, even with --quiet: which commit it got and that a newer one is building.
    assert.equal(cloned.stderr, `snapclone: cloned refs/heads/main at ${up.head.slice(0, 12)}; the server is still building ${next.slice(0, 12)}\n`);
    const shallow = await cliOk(s.url, ['clone', '--depth', '1', '--json', 'busy', join(work, 'old-shallow')]);
    assert.deepEqual(JSON.parse(shallow.stdout).newer, { commit: next, job });
    gate.open('shallow');
    assert.equal((await waitJob(s.url, job)).state, 'succeeded');
    for (const mode of MODES) {
      const r = await resolve(s.url, 'busy', mode);
      assert.equal(r.json.commit, next, mode);
      assert.equal(r.json.newer, null, mode);
    }
  } finally {
    await s.close();
  }
});

test('force push: every mode moves to the new commit; a full clone matches git clone', async () => {
  const parent = tempDir();
  const up = makeUpstream(parent);
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'forced');
    git(up.dir, ['reset', '-q', '--hard', 'HEAD~1']);
    const rewritten = commit(up.dir, { 'src/a.txt': 'rewritten\n' }, 'second, rewritten');
    assert.equal((await waitJob(s.url, await sync(s.url, 'forced'))).state, 'succeeded');
    for (const mode of MODES) assert.equal((await resolve(s.url, 'forced', mode)).json.commit, rewritten, mode);
    const work = tempDir();
    hermeticGit(['clone', '-q', up.dir, 'g'], { cwd: work }); // the CLI's environment: same reflog identity
    await cliOk(s.url, ['clone', 'forced', join(work, 's')]);
    // The force-pushed commit still sits in an older history level (nothing is deleted).
    assert.deepEqual(compareClones(join(work, 'g'), join(work, 's'), { mode: 'editable', ignoreConfigKeys: ['remote.origin.url'], allowExtraObjects: true }), []);
  } finally {
    await s.close();
  }
});

test('branch delete: the next sync stops serving it in every mode; created again, a later sync serves it again', async () => {
  const up = makeUpstream(tempDir());
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'pruned');
    assert.equal((await waitJob(s.url, await sync(s.url, 'pruned', { branch: 'dev' }))).state, 'succeeded');
    for (const mode of MODES) assert.equal((await resolve(s.url, 'pruned', mode, 'dev')).status, 200, mode);
    const devCommit = (await resolve(s.url, 'pruned', 'full', 'dev')).json.commit;
    git(up.dir, ['branch', '-D', 'dev']);
    assert.equal((await waitJob(s.url, await sync(s.url, 'pruned'))).state, 'succeeded');
    for (const mode of MODES) assert.equal((await resolve(s.url, 'pruned', mode, 'dev')).status, 404, mode);
    const full = await manifestOf(s.url, (await resolve(s.url, 'pruned', 'full')).json.manifest.digest);
    assert.ok(!full.refs.some((r) => r.name === 'refs/heads/dev'), "main's full manifest no longer lists dev");
    const status = await call(s.url, 'GET', '/v1/repos/pruned');
    assert.deepEqual(status.json.refs.map((r: any) => r.ref), ['refs/heads/main']);
    assert.deepEqual(status.json.refs[0].modes, { shallow: { commit: up.head }, files: { commit: up.head }, full: { commit: up.head } });
    // Created again upstream (at its old commit): a sync of it serves it again, without a rebuild of the commit.
    git(up.dir, ['branch', 'dev', devCommit]);
    assert.equal((await waitJob(s.url, await sync(s.url, 'pruned', { branch: 'dev' }))).state, 'succeeded');
    for (const mode of MODES) assert.equal((await resolve(s.url, 'pruned', mode, 'dev')).json.commit, devCommit, mode);
  } finally {
    await s.close();
  }
});

test('a new tag on a built commit: one tag pack, no rebuild; the shallow manifest follows it', async () => {
  const parent = tempDir();
  const up = makeUpstream(parent);
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'tagged');
    const before = await manifestOf(s.url, (await resolve(s.url, 'tagged', 'shallow')).json.manifest.digest);
    const artifactsBefore = new Set(listFiles(join(s.dataDir, 'artifacts')));
    git(up.dir, ['tag', '-a', '-m', 'release 3', 'v3']);
    const tagOid = git(up.dir, ['rev-parse', 'v3']);
    assert.equal((await waitJob(s.url, await sync(s.url, 'tagged'))).state, 'succeeded');
    const after = await manifestOf(s.url, (await resolve(s.url, 'tagged', 'shallow')).json.manifest.digest);
    assert.equal(after.commit, up.head);
    assert.deepEqual(after.followedTags, ['refs/tags/v3']);
    assert.deepEqual(after.refs.map((r) => r.name), ['refs/heads/main', 'refs/tags/v3']);
    assert.equal(after.headPacks.length, before.headPacks.length + 1, 'the tag pack comes last');
    assert.deepEqual(after.headPacks.slice(0, -1), before.headPacks, 'the commit was not built again');
    assert.deepEqual(after.table, before.table);
    // The new artifacts: the tag pack, a history level with the tag object, manifests; no table, no chunk.
    const added = listFiles(join(s.dataDir, 'artifacts')).filter((f) => !artifactsBefore.has(f));
    const tagPack = after.headPacks.at(-1)!;
    for (const d of [tagPack.pack.digest, tagPack.idx.digest]) assert.ok(added.some((f) => f.endsWith(d)), 'tag pack stored');
    assert.ok(!added.some((f) => f.endsWith(after.table.digest)));
    // The tag pack holds the tag object: git reads it.
    const work = tempDir();
    git(work, ['init', '-q', '--bare', 'x.git']);
    const packPath = join(work, 'x.git', 'objects', 'pack', `${tagPack.name}.pack`);
    writeFileSync(packPath, Buffer.from(await (await fetch(`${s.url}/v1/artifacts/${tagPack.pack.digest}`)).arrayBuffer()));
    git(join(work, 'x.git'), ['index-pack', packPath]);
    assert.match(git(join(work, 'x.git'), ['verify-pack', '-v', packPath.replace(/\.pack$/, '.idx')]), new RegExp(`^${tagOid} tag`, 'm'));
  } finally {
    await s.close();
  }
});

test('a sync with nothing new upstream writes no artifact, no manifest, no snapshot, and under 64 KiB in all', async () => {
  const up = makeUpstream(tempDir());
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'quiet');
    assert.equal((await waitJob(s.url, await sync(s.url, 'quiet', { branch: 'dev' }))).state, 'succeeded');
    for (const mode of MODES) assert.equal((await resolve(s.url, 'quiet', mode)).status, 200); // compose what resolves compose
    const dbPath = join(s.dataDir, 'snapclone.db');
    const counts = () => {
      const db = new Database(dbPath, { readonly: true });
      try {
        const n = (t: string) => (db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
        return { snapshots: n('refs_snapshots'), builds: n('commit_builds'), composed: n('composed_manifests'), refs: JSON.stringify(db.prepare('SELECT * FROM ref_modes ORDER BY ref, mode').all()) };
      } finally {
        db.close();
      }
    };
    const countsBefore = counts();
    // Empty the WAL, so its size after the sync is what the sync appended.
    const db = new Database(dbPath);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    assert.equal(statSync(`${dbPath}-wal`).size, 0);
    const before = fileStates(s.dataDir);
    assert.equal((await waitJob(s.url, await sync(s.url, 'quiet'))).state, 'succeeded');
    const after = fileStates(s.dataDir);
    let written = 0;
    const changed: string[] = [];
    for (const [path, st] of after) {
      const was = before.get(path);
      if (was && was.size === st.size && was.mtimeMs === st.mtimeMs) continue;
      written += was && st.size > was.size && path.endsWith('-wal') ? st.size - was.size : st.size; // rewritten files count whole
      changed.push(`${path} ${st.size}`);
    }
    assert.ok(written < 64 * 1024, `a no-op sync wrote ${written} bytes: ${changed.join(', ')}`);
    const artifacts = (m: Map<string, unknown>) => [...m.keys()].filter((p) => p.startsWith('artifacts/')).sort();
    assert.deepEqual(artifacts(after), artifacts(before), 'a no-op sync stored an artifact');
    assert.deepEqual(counts(), countsBefore, 'a no-op sync wrote a record, build, snapshot or manifest');
    for (const mode of MODES) assert.equal((await resolve(s.url, 'quiet', mode)).json.commit, up.head);
  } finally {
    await s.close();
  }
});

test('history levels: after many syncs the chain is compacted, and every older full manifest stays whole and readable by git', async () => {
  const parent = tempDir();
  const up = makeUpstream(parent);
  const s = await startTestServer();
  try {
    await addAndBuild(s.url, up.dir, 'levels');
    const manifests: Manifest[] = [await manifestOf(s.url, (await resolve(s.url, 'levels', 'full')).json.manifest.digest)];
    for (let i = 0; i < 16; i++) {
      commit(up.dir, { [`step/${i}.txt`]: `step ${i}\n`.repeat(50 + i) }, `step ${i}`);
      assert.equal((await waitJob(s.url, await sync(s.url, 'levels'))).state, 'succeeded');
      manifests.push(await manifestOf(s.url, (await resolve(s.url, 'levels', 'full')).json.manifest.digest));
    }
    const latest = manifests.at(-1)!;
    assert.ok(latest.historyPacks.length <= 12, `${latest.historyPacks.length} history packs: levels were not compacted`);
    assert.ok(latest.historyPacks.length < manifests.length, 'no compaction happened');
    const reused = manifests.slice(1).some((m, i) => m.historyPacks.some((p) => manifests[i]!.historyPacks.some((q) => q.name === p.name)));
    assert.ok(reused, 'a sync reused no level of the one before');
    for (const [i, m] of manifests.entries()) {
      for (const a of manifestArtifacts(m)) assert.equal((await fetch(`${s.url}/v1/artifacts/${a.digest}`, { method: 'HEAD' })).status, 200, `manifest ${i} lost ${a.digest}`);
      // The manifest's history packs alone hold everything its refs reach.
      const repo = join(tempDir(), 'check.git');
      git(parent, ['init', '-q', '--bare', repo]);
      for (const p of m.historyPacks) {
        for (const [ext, art] of [['pack', p.pack], ['idx', p.idx]] as const) {
          writeFileSync(join(repo, 'objects', 'pack', `${p.name}.${ext}`), Buffer.from(await (await fetch(`${s.url}/v1/artifacts/${art.digest}`)).arrayBuffer()));
        }
      }
      for (const r of m.refs) git(repo, ['update-ref', r.name, r.oid]);
      git(repo, ['fsck', '--full', '--no-dangling']);
      assert.equal(git(repo, ['rev-parse', 'refs/heads/main']), m.commit);
    }
  } finally {
    await s.close();
  }
});

test('determinism: shallow and files manifests are the same bytes built cold or incrementally; full ones differ only in history levels', async () => {
  const parent = tempDir();
  const up = makeUpstream(parent);
  const warm = await startTestServer();
  const cold = await startTestServer();
  try {
    await addAndBuild(warm.url, up.dir, 'det');
    for (let i = 0; i < 3; i++) {
      commit(up.dir, { [`d/${i}.txt`]: `${i}\n`.repeat(300), 'src/a.txt': `a ${i}\n` }, `det ${i}`);
      if (i === 1) git(up.dir, ['tag', '-a', '-m', 'mid', 'v-mid']);
      assert.equal((await waitJob(warm.url, await sync(warm.url, 'det'))).state, 'succeeded');
    }
    await addAndBuild(cold.url, up.dir, 'det');
    for (const mode of ['shallow', 'files'] as const) {
      const a = await resolve(warm.url, 'det', mode);
      const b = await resolve(cold.url, 'det', mode);
      assert.equal(a.json.commit, b.json.commit);
      assert.equal(a.json.manifest.digest, b.json.manifest.digest, mode);
    }
    const fa = await manifestOf(warm.url, (await resolve(warm.url, 'det', 'full')).json.manifest.digest);
    const fb = await manifestOf(cold.url, (await resolve(cold.url, 'det', 'full')).json.manifest.digest);
    assert.deepEqual({ ...fa, historyPacks: [] }, { ...fb, historyPacks: [] });
  } finally {
    await warm.close();
    await cold.close();
  }
});

function listFiles(dir: string, prefix = ''): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(join(dir, e.name), rel));
    else out.push(rel);
  }
  return out;
}

function fileStates(root: string): Map<string, { size: number; mtimeMs: number }> {
  const out = new Map<string, { size: number; mtimeMs: number }>();
  for (const rel of listFiles(root)) {
    const st = statSync(join(root, rel));
    out.set(rel, { size: st.size, mtimeMs: st.mtimeMs });
  }
  return out;
}


