/**
 * Garbage collection against a real server, real git and real clones (compared with git clone),
 * on the local store and on S3 (SeaweedFS): dry runs, exact sweeps, grace, retention, artifacts
 * reachable again, concurrent passes, builds and clones racing a pass, bounded growth, and the
 * mirror repack.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { compareClones } from '../support/compare.js';
import { fileUrl, git as gitSupport } from '../support/git.js';
import { startSeaweed, WEED_MISSING, type Seaweed } from '../support/seaweed.js';
import { cli, cliOk } from '../e2e/harness.js';
import { SqliteMetadataStore } from '../../src/metadata/sqlite/sqlite-store.js';
import { manifestArtifacts, parseManifest } from '../../src/clonepack/manifest.js';
import { packCount } from '../../src/builder/mirror-repack.js';
import { addAndBuild, call, commit, git, makeUpstream, tempDir } from './helpers.js';
import { bytesOf, fetchVerified, gcPass, missingOfManifest, resolveManifest, startGcServer, stored, syncAndWait, type GcBackend } from './gc-support.js';

let weed: Seaweed | null = null;
before(async () => {
  weed = await startSeaweed();
});
after(async () => {
  await weed?.stop();
});

const REFS = ['main', 'dev'];
const MODES = ['shallow', 'files', 'full'];

/** Clone NAME with the CLI in three modes and compare each with git clone of the upstream. */
async function clonesMatch(base: string, upstream: string, work: string, tag: string, allowExtraObjects = false): Promise<void> {
  for (const [gitFlags, snapFlags, mode] of [
    [[], [], 'editable'],
    [['--depth', '1'], ['--depth', '1'], 'editable'],
    [[], ['--mode', 'files'], 'files'],
  ] as const) {
    const k = `${tag}-${snapFlags.join('') || 'full'}`;
    const g = join(work, `g-${k}`);
    const s = join(work, `s-${k}`);
    gitSupport(['clone', '--quiet', ...gitFlags, fileUrl(upstream), g], { cwd: work });
    await cliOk(base, ['clone', 'acme/gc', s, ...snapFlags]);
    assert.deepEqual(compareClones(g, s, { mode, allowExtraObjects }), [], `${k} differs from git clone`);
    if (mode === 'editable') gitSupport(['fsck', '--full', '--strict'], { cwd: s });
  }
}

function churn(dir: string, i: number): string {
  // A changed file per sync (new blobs, new packs), on main.
  return commit(dir, { [`src/gen-${i % 3}.txt`]: `${i}\n`.repeat(2000 + i), 'README.md': `# hello ${i}\n` }, `change ${i}`);
}

/**
 * A server (grace 1 s, retain 0) that built commit A of a fresh upstream, resolved A's shallow
 * manifest, moved main on, and ran one pass: A's artifacts are seen unreachable once.
 */
async function builtThenMovedOn(prefix: string) {
  const work = tempDir(prefix);
  const up = makeUpstream(work);
  const srv = await startGcServer({ name: 'local' }, join(work, 'data'), { SNAPCLONE_GC_GRACE_SECONDS: '1', SNAPCLONE_GC_RETAIN: '0' });
  const base = srv.s.url;
  await addAndBuild(base, fileUrl(up.dir), 'acme/gc');
  const a = git(up.dir, ['rev-parse', 'HEAD']);
  const manifestA = await resolveManifest(base, 'acme/gc', 'main', 'shallow');
  const artifactsA = [manifestA, ...manifestArtifacts(parseManifest((await fetchVerified(base, manifestA)) as Buffer)).map((x) => x.digest)];
  churn(up.dir, 1);
  await syncAndWait(base, 'acme/gc');
  await gcPass(base);
  return { work, up, srv, base, a, manifestA, artifactsA };
}

function gcTests(backend: GcBackend): void {
  const skip = () => (backend.weed && !weed ? WEED_MISSING : null);

  test(`${backend.name}: a dry run deletes nothing; a pass with grace 0 deletes exactly the unreachable; retained manifests stay whole; clones equal git clone`, async (t) => {
    if (skip()) return t.skip(skip()!);
    const work = tempDir('snapclone-gc-');
    const up = makeUpstream(work);
    const srv = await startGcServer(backend, join(work, 'data'), { SNAPCLONE_GC_GRACE_SECONDS: '0', SNAPCLONE_GC_RETAIN: '1' });
    try {
      const base = srv.s.url;
      await addAndBuild(base, fileUrl(up.dir), 'acme/gc');
      await syncAndWait(base, 'acme/gc', { branch: 'dev' });
      const fullBySync: string[] = [await resolveManifest(base, 'acme/gc', 'main', 'full')];
      for (let i = 1; i <= 4; i++) {
        churn(up.dir, i);
        await syncAndWait(base, 'acme/gc');
        fullBySync.push(await resolveManifest(base, 'acme/gc', 'main', 'full'));
      }
      const beforeDry = await stored(srv.store);
      const dry = await gcPass(base, true);
      assert.equal(dry.ran, true);
      assert.ok(dry.deleted.count > 0, 'the dry run finds something to delete');
      // (A pass composes the manifests of refs and modes no resolve asked for yet: those are added.)
      const before = await stored(srv.store);
      for (const d of beforeDry.keys()) assert.ok(before.has(d), 'a dry run deletes nothing');
      assert.equal(dry.stored.count, before.size);
      assert.equal((await call(base, 'GET', '/v1/gc')).json.unreachable.count, 0, 'and records nothing');

      const pass = await gcPass(base);
      assert.equal(pass.deleted.count, dry.deleted.count, 'the pass deletes what the dry run showed');
      assert.equal(pass.deleted.bytes, dry.deleted.bytes);
      const afterPass = await stored(srv.store);
      assert.equal(afterPass.size, before.size - pass.deleted.count);
      assert.equal(bytesOf(afterPass), bytesOf(before) - pass.deleted.bytes);
      for (const d of afterPass.keys()) assert.ok(before.has(d));
      // What is reachable stays: every ref in every mode, and the manifest one sync older (retain 1).
      for (const ref of REFS) for (const mode of MODES) assert.deepEqual(await missingOfManifest(base, await resolveManifest(base, 'acme/gc', ref, mode)), [], `${ref} ${mode}`);
      assert.deepEqual(await missingOfManifest(base, fullBySync[3]!), [], 'the retained older manifest is whole');
      // What went was unreachable: the manifests older than retention.
      for (const old of fullBySync.slice(0, 3)) assert.equal(await fetchVerified(base, old), 404, 'an expired manifest is deleted');
      // And exactly that: a second pass finds everything left reachable.
      const second = await gcPass(base);
      assert.equal(second.deleted.count, 0);
      assert.equal(second.unreachable.count, 0, 'nothing unreachable is left');
      assert.equal(second.reachable.count, afterPass.size);
      await clonesMatch(base, up.dir, work, 'after-gc');
      // And later syncs still build on what is left (levels, reuse).
      churn(up.dir, 5);
      await syncAndWait(base, 'acme/gc');
      await clonesMatch(base, up.dir, work, 'after-sync');
      t.diagnostic(`${backend.name}: ${before.size} artifacts (${bytesOf(before)} B) before, deleted ${pass.deleted.count} (${pass.deleted.bytes} B)`);
    } finally {
      await srv.close();
    }
  });

  test(`${backend.name}: a clone that resolved before a pass completes (its manifest is in grace, older garbage goes); a build racing passes publishes a complete clonepack`, async (t) => {
    if (skip()) return t.skip(skip()!);
    const work = tempDir('snapclone-gc-race-');
    const up = makeUpstream(work);
    const srv = await startGcServer(backend, join(work, 'data'), { SNAPCLONE_GC_GRACE_SECONDS: '1', SNAPCLONE_GC_RETAIN: '0' });
    try {
      const base = srv.s.url;
      await addAndBuild(base, fileUrl(up.dir), 'acme/gc');
      for (let i = 1; i <= 2; i++) {
        churn(up.dir, i);
        await syncAndWait(base, 'acme/gc');
      }
      await gcPass(base); // the first two syncs' leftovers are seen unreachable now
      await sleep(1100); // ... and past their grace
      // A clone resolves (and would download) the current manifest; then the ref moves on.
      const resolved = await resolveManifest(base, 'acme/gc', 'main', 'full');
      churn(up.dir, 3);
      await syncAndWait(base, 'acme/gc');
      const pass = await gcPass(base);
      assert.ok(pass.deleted.count > 0, 'older garbage is deleted');
      assert.ok(pass.inGrace.count > 0, 'what the clone uses is in grace');
      assert.deepEqual(await missingOfManifest(base, resolved), [], 'the clone that started before the pass gets every artifact');
      // Builds, passes and clones at once, a few rounds: every build is complete and clones equal git clone.
      for (let i = 4; i <= 6; i++) {
        churn(up.dir, i);
        const r = await call(base, 'POST', '/v1/repos/acme%2Fgc/sync', {});
        assert.equal(r.status, 202);
        const cloneDir = join(work, `during-${i}`);
        const [passes] = await Promise.all([
          (async () => {
            const out = [];
            for (let k = 0; k < 3; k++) out.push(await gcPass(base));
            return out;
          })(),
          cliOk(base, ['clone', 'acme/gc', cloneDir]),
          syncJobDone(base, r.json.job.id),
        ]);
        gitSupport(['fsck', '--full', '--strict'], { cwd: cloneDir });
        t.diagnostic(`round ${i}: passes deleted ${passes.map((p: any) => p.deleted.count).join('/')}, deferred ${passes.map((p: any) => p.deferred.count).join('/')}`);
        await clonesMatch(base, up.dir, work, `race-${i}`);
      }
    } finally {
      await srv.close();
    }
  });
  test(`${backend.name}: a pass during a build deletes nothing (what is due is deferred); the build publishes a complete clonepack; the next pass deletes`, async (t) => {
    if (skip()) return t.skip(skip()!);
    const work = tempDir('snapclone-gc-during-');
    const up = makeUpstream(work);
    let base = '';
    let during: any = null;
    let hold = false;
    const srv = await startGcServer(backend, join(work, 'data'), { SNAPCLONE_GC_GRACE_SECONDS: '0', SNAPCLONE_GC_RETAIN: '0' }, {
      buildOptions: {
        // Mid-build (the shallow record is out, the archive and history are not): a GC pass.
        beforeStep: async (step) => {
          if (hold && step === 'shallow' && during === null) during = await gcPass(base);
        },
      },
    });
    try {
      base = srv.s.url;
      await addAndBuild(base, fileUrl(up.dir), 'acme/gc');
      churn(up.dir, 1);
      await syncAndWait(base, 'acme/gc'); // the first build is unreachable now (retain 0), due at once (grace 0)
      churn(up.dir, 2);
      hold = true;
      const before = await stored(srv.store);
      await syncAndWait(base, 'acme/gc');
      assert.ok(during, 'the pass ran during the build');
      assert.equal(during.deleted.count, 0, 'nothing is deleted while a build runs');
      assert.ok(during.deferred.count > 0, 'what was due waits');
      const afterBuild = await stored(srv.store);
      for (const d of before.keys()) assert.ok(afterBuild.has(d), 'every artifact stored before the build is still there');
      await clonesMatch(base, up.dir, work, 'built-during-gc');
      const next = await gcPass(base);
      assert.ok(next.deleted.count >= during.deferred.count, 'the next pass deletes what was deferred');
      assert.equal((await gcPass(base)).unreachable.count, 0);
      await clonesMatch(base, up.dir, work, 'after-next-pass');
    } finally {
      await srv.close();
    }
  });
}

async function syncJobDone(base: string, id: number): Promise<void> {
  for (;;) {
    const j = await call(base, 'GET', `/v1/jobs/${id}`);
    if (j.json.state === 'succeeded') return;
    if (j.json.state === 'failed') throw new Error(`sync failed: ${j.json.error}`);
    await sleep(30);
  }
}

describe('gc on the local store', () => gcTests({ name: 'local' }));
describe('gc on S3 (SeaweedFS)', () => gcTests({ name: 's3', weed: () => weed }));

describe('gc behaviour (local store)', () => {
  test('an artifact in grace is not deleted; past the grace it is; GET /v1/gc shows what is reclaimable', async () => {
    const work = tempDir('snapclone-gc-grace-');
    const up = makeUpstream(work);
    const srv = await startGcServer({ name: 'local' }, join(work, 'data'), { SNAPCLONE_GC_GRACE_SECONDS: '2', SNAPCLONE_GC_RETAIN: '0' });
    try {
      const base = srv.s.url;
      await addAndBuild(base, fileUrl(up.dir), 'acme/gc');
      const first = await resolveManifest(base, 'acme/gc', 'main', 'full');
      churn(up.dir, 1);
      await syncAndWait(base, 'acme/gc');
      const before = await stored(srv.store);
      const p1 = await gcPass(base);
      assert.equal(p1.deleted.count, 0, 'nothing is past its grace yet');
      assert.ok(p1.inGrace.count > 0);
      const afterP1 = await stored(srv.store);
      for (const d of before.keys()) assert.ok(afterP1.has(d), 'nothing was deleted');
      const status = (await call(base, 'GET', '/v1/gc')).json;
      assert.equal(status.unreachable.count, p1.inGrace.count);
      assert.equal(status.unreachable.bytes, p1.inGrace.bytes);
      assert.equal(status.reclaimableNow.count, 0);
      assert.equal(status.last.inGrace.count, p1.inGrace.count);
      assert.equal((await call(base, 'GET', '/v1/gc', undefined)).status, 200);
      await sleep(2100);
      assert.equal((await call(base, 'GET', '/v1/gc')).json.reclaimableNow.count, p1.inGrace.count);
      const p2 = await gcPass(base);
      assert.equal(p2.deleted.count, p1.inGrace.count, 'past the grace, exactly those go');
      assert.equal(p2.deleted.bytes, p1.inGrace.bytes);
      assert.equal(await fetchVerified(base, first), 404);
    } finally {
      await srv.close();
    }
  });

  test('an artifact that became reachable again during its grace is forgotten, and kept', async () => {
    const { work, up, srv, base, a, manifestA, artifactsA } = await builtThenMovedOn('snapclone-gc-again-');
    try {
      const meta = new SqliteMetadataStore(join(srv.dataDir, 'snapclone.db'));
      try {
        const listed1 = new Set((await meta.gcListUnreachable()).map((u) => u.digest));
        assert.ok(listed1.has(manifestA), "A's manifest is unreachable once main moved on");
        // The upstream goes back to A (a revert by force push): A's build is reachable again.
        git(up.dir, ['reset', '-q', '--hard', a]);
        await syncAndWait(base, 'acme/gc');
        await sleep(1100); // A's first sighting is past the grace now
        const p = await gcPass(base);
        const listed2 = new Set((await meta.gcListUnreachable()).map((u) => u.digest));
        for (const d of artifactsA) assert.ok(!listed2.has(d), `${d} of A is no longer recorded unreachable`);
        assert.deepEqual(await missingOfManifest(base, manifestA), [], "A's artifacts are all kept");
        assert.ok(p.inGrace.count > 0, "the other sync's build is unreachable now (in its grace)");
      } finally {
        await meta.close();
      }
      // A force push back leaves the dropped commit's objects in the history levels (append-only
      // levels, not GC): a full clone holds them as dangling extras until the chain is repacked.
      await clonesMatch(base, up.dir, work, 'reverted', true);
    } finally {
      await srv.close();
    }
  });

  test('an artifact reused by a build between two passes starts its grace afresh when it goes again (not from its first sighting)', async () => {
    const { up, srv, base, a, manifestA, artifactsA } = await builtThenMovedOn('snapclone-gc-reuse-'); // first sighting of A's artifacts
    try {
      await sleep(1100); // ...now past the grace
      // Back to A: the build reuses A's artifacts and a clone resolves it (its manifest is composed)...
      git(up.dir, ['reset', '-q', '--hard', a]);
      await syncAndWait(base, 'acme/gc');
      assert.equal(await resolveManifest(base, 'acme/gc', 'main', 'shallow'), manifestA);
      // ...then main moves on before any pass saw A referenced again.
      churn(up.dir, 2);
      await syncAndWait(base, 'acme/gc');
      const p = await gcPass(base);
      // A clone of A may still be downloading: its artifacts stopped being referenced just now.
      assert.deepEqual(await missingOfManifest(base, manifestA), [], "A's artifacts are kept: their grace counts from the second sighting");
      // (What A' reused but no resolve composed, its other modes' artifacts, may go: no clone can hold them.)
      assert.ok(p.inGrace.count >= 1 && artifactsA.length > 1, `A's artifacts are in grace (${p.inGrace.count})`);
      await sleep(1100);
      await gcPass(base);
      assert.deepEqual(await missingOfManifest(base, manifestA), [manifestA], "past the grace from the second sighting A's manifest goes");
    } finally {
      await srv.close();
    }
  });

  test('two passes asked for at once run one (both get its report); a pass held by another server makes one do nothing', async () => {
    const work = tempDir('snapclone-gc-two-');
    const up = makeUpstream(work);
    const srv = await startGcServer({ name: 'local' }, join(work, 'data'), { SNAPCLONE_GC_GRACE_SECONDS: '0' });
    try {
      const base = srv.s.url;
      await addAndBuild(base, fileUrl(up.dir), 'acme/gc');
      churn(up.dir, 1);
      await syncAndWait(base, 'acme/gc');
      const both = await Promise.all([gcPass(base), gcPass(base)]);
      assert.deepEqual(both[0], both[1], 'one pass, one report');
      assert.equal(both[0].ran, true);
      assert.ok(both[0].deleted.count > 0);
      const meta = new SqliteMetadataStore(join(srv.dataDir, 'snapclone.db'));
      try {
        assert.equal(await meta.gcAcquirePass('other-server', 60_000), true);
        const refused = await gcPass(base);
        assert.equal(refused.ran, false);
        assert.match(refused.reason, /another/);
        await meta.gcReleasePass('other-server');
        assert.equal((await gcPass(base)).ran, true);
      } finally {
        await meta.close();
      }
      // The endpoints are admin ones.
      assert.equal((await call(base, 'POST', '/v1/gc', { dryRun: 'yes' })).status, 400);
    } finally {
      await srv.close();
    }
  });

  test('the data dir stays bounded over syncs; figures', async (t) => {
    const work = tempDir('snapclone-gc-bound-');
    const up = makeUpstream(work);
    const srv = await startGcServer({ name: 'local' }, join(work, 'data'), { SNAPCLONE_GC_GRACE_SECONDS: '0', SNAPCLONE_GC_RETAIN: '1' });
    const N = 10;
    try {
      const base = srv.s.url;
      await addAndBuild(base, fileUrl(up.dir), 'acme/gc');
      let deleted = 0;
      const kept: number[] = [];
      const ever: number[] = [];
      for (let i = 1; i <= N; i++) {
        churn(up.dir, i);
        await syncAndWait(base, 'acme/gc');
        deleted += (await gcPass(base)).deleted.bytes;
        kept.push(bytesOf(await stored(srv.store)));
        ever.push(kept.at(-1)! + deleted); // everything ever stored: what is left and what went
      }
      t.diagnostic(`store bytes after each sync + gc: ${kept.join(', ')}`);
      t.diagnostic(`without gc it would hold: ${ever.join(', ')}; deleted ${deleted} B in all`);
      const half = N / 2;
      const grewWith = kept[N - 1]! - kept[half - 1]!;
      const grewWithout = ever[N - 1]! - ever[half - 1]!;
      assert.ok(grewWith * 4 < grewWithout, `with gc the store grew ${grewWith} B over the last ${half} syncs, without ${grewWithout} B`);
      await clonesMatch(base, up.dir, work, 'bounded');
    } finally {
      await srv.close();
    }
  });

  test('a mirror past SNAPCLONE_MIRROR_MAX_PACKS is repacked by the next sync; later syncs and clones still work', async (t) => {
    const work = tempDir('snapclone-gc-repack-');
    const up = makeUpstream(work);
    const srv = await startGcServer({ name: 'local' }, join(work, 'data'), { SNAPCLONE_MIRROR_MAX_PACKS: '3' });
    try {
      const base = srv.s.url;
      await addAndBuild(base, fileUrl(up.dir), 'acme/gc');
      const mirror = join(srv.dataDir, 'mirrors', `${encodeURIComponent('acme/gc')}.git`);
      const counts: number[] = [packCount(mirror)];
      for (let i = 1; i <= 6; i++) {
        churn(up.dir, i);
        await syncAndWait(base, 'acme/gc');
        counts.push(packCount(mirror));
        assert.ok(counts.at(-1)! <= 4, `pack counts ${counts.join(', ')}: a sync past 3 packs repacks`);
      }
      assert.ok(counts.some((c, i) => i > 0 && c < counts[i - 1]!), `the count dropped at a repack: ${counts.join(', ')}`);
      gitSupport(['fsck', '--full', '--strict'], { cwd: mirror });
      t.diagnostic(`mirror pack counts after each sync: ${counts.join(', ')}`);
      await clonesMatch(base, up.dir, work, 'repacked');
    } finally {
      await srv.close();
    }
  });
});

describe('gc endpoints, CLI and the periodic pass', () => {
  test('admin only; snapclone gc [--dry-run] [--json] reports; the periodic pass runs on its own', async () => {
    const work = tempDir('snapclone-gc-cli-');
    const up = makeUpstream(work);
    const srv = await startGcServer({ name: 'local' }, join(work, 'data'), { SNAPCLONE_GC_GRACE_SECONDS: '0', SNAPCLONE_GC_RETAIN: '0', SNAPCLONE_GC_INTERVAL_SECONDS: '1' }, { adminToken: 'sekrit' });
    try {
      const base = srv.s.url;
      const auth = { authorization: 'Bearer sekrit' };
      assert.equal((await call(base, 'GET', '/v1/gc')).status, 401);
      assert.equal((await call(base, 'POST', '/v1/gc', {})).status, 401);
      const add = await call(base, 'POST', '/v1/repos', { url: fileUrl(up.dir), name: 'acme/gc' }, auth);
      assert.equal(add.status, 201, add.text);
      for (;;) {
        const j = await call(base, 'GET', `/v1/jobs/${add.json.job.id}`);
        if (j.json.state === 'succeeded') break;
        assert.notEqual(j.json.state, 'failed');
        await sleep(30);
      }
      churn(up.dir, 1);
      const s = await call(base, 'POST', '/v1/repos/acme%2Fgc/sync', {}, auth);
      await syncJobDone(base, s.json.job.id);
      const refused = await cli(base, ['gc']);
      assert.notEqual(refused.code, 0, 'without the token the CLI is refused');
      const env = { SNAPCLONE_TOKEN: 'sekrit' };
      const dry = JSON.parse((await cliOk(base, ['gc', '--dry-run', '--json'], { env })).stdout);
      assert.equal(dry.dryRun, true);
      const text = (await cliOk(base, ['gc', '--dry-run'], { env })).stdout;
      assert.match(text, /dry run: nothing deleted/);
      assert.match(text, /would delete\s+\d+/);
      assert.match((await cli(base, ['gc', 'extra'], { env })).stderr, /gc takes no arguments/);
      assert.match((await cliOk(base, ['status', 'acme/gc'], { env })).stdout, /store garbage: +\d+ unreachable artifacts \(.+\), .+ reclaimable now/);
      assert.doesNotMatch((await cliOk(base, ['status', 'acme/gc'])).stdout, /store garbage/, 'only the admin sees it');
      // The periodic pass (every second here) runs without being asked.
      let last: any = null;
      for (let i = 0; i < 100 && !last; i++) {
        last = (await call(base, 'GET', '/v1/gc', undefined, auth)).json.last;
        if (!last) await sleep(50);
      }
      assert.ok(last?.ran, 'a periodic pass ran and left its report');
      assert.equal(last.dryRun, false);
    } finally {
      await srv.close();
    }
  });
});
