/**
 * Many syncs of one repository at once, racing with pushes, bypassing the queue
 * (which runs one job per repository at a time) so the publish steps really
 * interleave (a random pause before each publish step shuffles them): a second SyncService on the server's own data dir, database and
 * artifact store. Meanwhile resolves of every mode go through the server's HTTP
 * API, and the commit each answers must never go back in push order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { addAndBuild, call, commit, makeUpstream, startTestServer, tempDir } from './helpers.js';
// Many requests from one address as fast as they go: what is tested is not the rate limit (access/rate-limit.ts).
process.env.SNAPCLONE_RATE_LIMIT = '0';
import { SqliteMetadataStore } from '../../src/metadata/sqlite/sqlite-store.js';
import { LocalArtifactStore } from '../../src/storage/local/local-store.js';
import { SyncService } from '../../src/serve/sync.js';
import { parseManifest } from '../../src/clonepack/manifest.js';

const MODES = ['shallow', 'files', 'full'] as const;
const SYNCS = 32;

test(`${SYNCS} concurrent syncs racing with pushes: no resolve of any mode ever answers an older commit than before`, async () => {
  const up = makeUpstream(tempDir());
  const s = await startTestServer();
  const meta = new SqliteMetadataStore(join(s.dataDir, 'snapclone.db'));
  try {
    await addAndBuild(s.url, up.dir, 'race');
    // A random pause before each publish step shuffles the order in which the racing syncs publish.
    const shuffle = () => new Promise<void>((r) => setTimeout(r, Math.random() * 150));
    const syncs = new SyncService(s.dataDir, new LocalArtifactStore(join(s.dataDir, 'artifacts')), meta, { beforeStep: shuffle });
    const pushed = [up.head]; // push order: each commit is a child of the one before
    const seen: Record<string, number[]> = { shallow: [], files: [], full: [] };
    let done = false;
    const watch = async (mode: (typeof MODES)[number]) => {
      while (!done) {
        const r = await call(s.url, 'GET', `/v1/repos/race/resolve?mode=${mode}`);
        assert.equal(r.status, 200, r.text);
        const at = pushed.indexOf(r.json.commit);
        assert.ok(at >= 0, `${mode} answered ${r.json.commit}, which was never pushed`);
        const last = seen[mode]!.at(-1) ?? 0;
        assert.ok(at >= last, `${mode} went back from push ${last} to push ${at}`);
        if (at !== last) seen[mode]!.push(at);
        if (r.json.newer) assert.ok(pushed.indexOf(r.json.newer.commit) > at, `${mode}: newer names an older commit`);
      }
    };
    const watchers = MODES.map(watch);
    const runs: Promise<unknown>[] = [];
    for (let i = 0; i < SYNCS; i++) {
      if (i % 2 === 0) pushed.push(commit(up.dir, { [`f/${i}.txt`]: `push ${i}\n`.repeat(20 + i) }, `push ${i}`));
      const job = await meta.createJob({ repo: 'race', kind: 'sync', ref: null, state: 'running', phase: 'racing', error: null, commit: null, createdAt: Date.now(), startedAt: Date.now(), finishedAt: null });
      runs.push(
        syncs.run(job, () => {}).finally(async () => await meta.updateJob(job.id, { state: 'succeeded', finishedAt: Date.now() })),
      );
      await new Promise((r) => setTimeout(r, Math.random() * 40)); // let some finish, some overlap
    }
    const results = await Promise.allSettled(runs);
    done = true;
    await Promise.all(watchers);
    const failed = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    assert.deepEqual(failed, []);
    // After every sync, each mode serves the last push, with the full ref list and history.
    for (const mode of MODES) {
      const r = await call(s.url, 'GET', `/v1/repos/race/resolve?mode=${mode}`);
      assert.equal(r.json.commit, pushed.at(-1), mode);
      assert.equal(r.json.newer, null);
    }
    const full = await call(s.url, 'GET', '/v1/repos/race/resolve?mode=full');
    const m = parseManifest(Buffer.from(await (await fetch(`${s.url}/v1/artifacts/${full.json.manifest.digest}`)).arrayBuffer()));
    assert.equal(m.refs.find((r) => r.name === 'refs/heads/main')!.oid, pushed.at(-1));
    for (const mode of MODES) assert.ok(seen[mode]!.length > 1, `${mode} never saw a push land while racing: ${seen[mode]}`);
  } finally {
    meta.close();
    await s.close();
  }
});
