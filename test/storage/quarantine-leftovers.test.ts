/**
 * A crash between quarantine's two renames leaves quarantine/<digest>.<pid>-<rand>.
 * The next store start finishes that quarantine (so the artifact is reported
 * damaged, and rebuilt) or, if it is moot, removes the leftover.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalArtifactStore } from '../../src/storage/local/local-store.js';

process.env.SNAPCLONE_LOG = 'error';

const deadPid = spawnSync('true').pid!;

test('an interrupted quarantine is finished at start-up, with a reason; a moot one is swept', async () => {
  const root = join(mkdtempSync(join(tmpdir(), 'snapclone-qleft-')), 'store');
  try {
    const store = new LocalArtifactStore(root);
    const a = await store.putBytes(Buffer.from('artifact a'));
    const b = await store.putBytes(Buffer.from('artifact b'));
    mkdirSync(join(root, 'quarantine'), { recursive: true });
    // a: crashed after the first rename. b: the same, but a put restored it since.
    renameSync(store.localPath(a.digest), join(root, 'quarantine', `${a.digest}.${deadPid}-0123456789abcdef`));
    renameSync(store.localPath(b.digest), join(root, 'quarantine', `${b.digest}.${deadPid}-fedcba9876543210`));
    await store.putBytes(Buffer.from('artifact b'));

    const again = new LocalArtifactStore(root);
    const listed = await again.listQuarantined();
    assert.deepEqual(listed.map((q) => [q.digest, q.reason]), [[a.digest, 'interrupted quarantine']]);
    assert.deepEqual(readdirSync(join(root, 'quarantine')).sort(), [a.digest, `${a.digest}.json`].sort());
    assert.equal(await again.stat(a.digest), null);
    assert.deepEqual(await again.read(b.digest), Buffer.from('artifact b'));
    // A put ends it as any quarantine.
    await again.putBytes(Buffer.from('artifact a'));
    assert.deepEqual(await again.listQuarantined(), []);
  } finally {
    rmSync(join(root, '..'), { recursive: true, force: true });
  }
});
