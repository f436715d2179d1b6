/**
 * `snapclone worker` and `serve --no-builds` need both shared engines; without them they refuse
 * in one line (exit 2) before touching the data dir, since what they built or served would be
 * invisible to the other processes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from './process-helpers.js';
import { cleanup, tempDir } from './helpers.js';

const DB = { SNAPCLONE_DATABASE_URL: 'postgres://snapclone@127.0.0.1:1/none' };

test('worker and serve --no-builds refuse without PostgreSQL or without a bucket, and leave the data dir alone', async (t) => {
  const dir = tempDir('snapclone-worker-cli-');
  t.after(() => cleanup(dir));
  const cases: Array<{ args: string[]; env: Record<string, string>; says: RegExp }> = [
    { args: ['worker'], env: {}, says: /worker needs the shared queue: set SNAPCLONE_DATABASE_URL/ },
    { args: ['worker'], env: DB, says: /worker needs the shared artifact store: set SNAPCLONE_S3_BUCKET/ },
    { args: ['serve', '--no-builds', '--port', '0'], env: {}, says: /--no-builds needs SNAPCLONE_DATABASE_URL/ },
    { args: ['serve', '--no-builds', '--port', '0'], env: DB, says: /--no-builds needs SNAPCLONE_S3_BUCKET/ },
  ];
  for (const [i, c] of cases.entries()) {
    const data = join(dir, `data-${i}`);
    const r = await runCli([...c.args, '--data-dir', data], { SNAPCLONE_DATABASE_URL: '', SNAPCLONE_S3_BUCKET: '', ...c.env });
    assert.equal(r.code, 2, `${c.args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, c.says);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    assert.equal(existsSync(data), false, 'the data dir was not created');
  }
  const bad = await runCli(['worker', '--listen', 'nope:xx', '--data-dir', join(dir, 'x')], {});
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /invalid --listen "nope:xx"/);
});
