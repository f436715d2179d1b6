/**
 * Stopping never waits on an upstream: a poll or a re-check whose ls-remote hangs
 * (held here through a fake ssh) does not hold stop(), and queues nothing after it.
 * A poll round that throws (the database closed under it) is logged, not an
 * unhandled rejection, and polling goes on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { commit, makeUpstream, tempDir } from './helpers.js';
import { heldSsh, until } from './held-upstream.js';
import { UpstreamPoller, type UpstreamChecks } from '../../src/serve/poller.js';
import { RecheckAfterBuild } from '../../src/serve/recheck.js';
import { SqliteMetadataStore } from '../../src/metadata/sqlite/sqlite-store.js';
import type { JobRecord } from '../../src/metadata/metadata-store.js';

const held = heldSsh(tempDir('snapclone-held-'));

function checks(meta: SqliteMetadataStore, root: string, enqueued: string[]): UpstreamChecks {
  return {
    meta,
    mirrorDir: (r) => join(root, 'no-mirror', r), // never fetched: any answer counts as moved
    enqueue: (req) => {
      enqueued.push(req.repo);
      return Promise.resolve({ id: enqueued.length } as JobRecord);
    },
  };
}

test('stop() of the poller and of the re-check does not wait for an ls-remote held at the upstream; nothing is queued after', { timeout: 60_000 }, async () => {
  const root = tempDir();
  const up = makeUpstream(root);
  const meta = new SqliteMetadataStore(join(root, 'm.db'));
  await meta.addRepo({ name: 'r', url: held.url(up.dir), defaultBranch: 'main', createdAt: 1, visibility: 'public' });
  const enqueued: string[] = [];
  const poller = new UpstreamPoller(checks(meta, root, enqueued), 1);
  held.holdBefore(1);
  held.holdBefore(2);
  try {
    poller.start();
    await until('the poll reaches the upstream', () => held.waiting(1));
    await poller.stop(); // before the fix: waits until the ls-remote ends (here: never)
    const recheck = new RecheckAfterBuild(checks(meta, root, enqueued));
    await recheck.wrap(async () => ({ commit: null }))({ id: 1, repo: 'r' } as JobRecord, () => {});
    await until('the re-check reaches the upstream', () => held.waiting(2));
    await recheck.stop();
    held.release(1);
    held.release(2);
    commit(up.dir, { 'x.txt': 'x\n' }, 'moved');
    await new Promise((r) => setTimeout(r, 300)); // let the released ls-remotes end (no timing asserted)
    assert.deepEqual(enqueued, [], 'a check finished after stop() queued a sync');
  } finally {
    held.release(1);
    held.release(2);
    meta.close();
  }
});

test('a poll round that throws is logged and polling goes on (no unhandled rejection)', async () => {
  const root = tempDir();
  let calls = 0;
  const enqueued: string[] = [];
  const meta = {
    listRepos: async () => {
      calls++;
      if (calls === 1) throw new Error('database is locked');
      return [];
    },
    getRepo: async () => null,
    unfinishedJobs: async () => [],
  };
  const poller = new UpstreamPoller({ meta, mirrorDir: (r) => join(root, r), enqueue: async (req) => (enqueued.push(req.repo), { id: 1 } as JobRecord) }, 1);
  const rejections: unknown[] = [];
  const onRejection = (err: unknown) => rejections.push(err);
  process.on('unhandledRejection', onRejection);
  try {
    poller.start();
    await until('a second round', () => calls >= 2, 10_000);
    assert.deepEqual(rejections, []);
  } finally {
    await poller.stop();
    process.off('unhandledRejection', onRejection);
  }
});
