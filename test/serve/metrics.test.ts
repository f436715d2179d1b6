/**
 * GET /metrics on a real server: Prometheus text that parses, counters that move with real
 * builds, clones (the CLI) and errors, queue gauges that follow a held build, and the token
 * rule (open without tokens, closed to all but the admin or metrics token otherwise).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { call, commit, makeUpstream, startTestServer, tempDir, waitJob } from './helpers.js';
import { addPublicAndBuild } from './public-upstream.js';
import { gatedSsh, waitRunning } from './gated-upstream.js';
import { parsePrometheus, sample, type Samples } from './prom-text.js';
import { cliOk } from '../e2e/harness.js';

async function scrape(base: string, headers: Record<string, string> = {}): Promise<Samples> {
  const res = await fetch(`${base}/metrics`, { headers });
  assert.equal(res.status, 200, await res.clone().text());
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await res.text());
}

test('metrics parse as Prometheus text, and builds, clones, bytes and errors move them', async () => {
  const s = await startTestServer();
  try {
    const work = tempDir();
    const up = makeUpstream(work);
    const before = await scrape(s.url);
    for (const family of ['snapclone_queue_jobs', 'snapclone_queue_oldest_job_age_seconds', 'process_cpu_user_seconds_total', 'nodejs_eventloop_lag_seconds'])
      assert.ok([...before.keys()].some((k) => k === family || k.startsWith(`${family}{`)), `${family} is exposed`);

    await addPublicAndBuild(s.url, up.dir, 'demo');
    const resolved = await call(s.url, 'GET', '/v1/repos/demo/resolve');
    assert.equal(resolved.status, 200, resolved.text);
    await cliOk(s.url, ['clone', '--quiet', 'demo', join(work, 'c1')]);
    await cliOk(s.url, ['clone', '--quiet', '--depth', '1', 'demo', join(work, 'c2')]);
    assert.equal((await call(s.url, 'GET', '/v1/repos/nosuch/resolve')).status, 404);
    assert.equal((await call(s.url, 'GET', `/v1/artifacts/${'ab'.repeat(32)}`)).status, 404);
    assert.equal((await call(s.url, 'POST', '/v1/repos', { url: 7 })).status, 400);
    const after = await scrape(s.url);
    const delta = (name: string, labels: Record<string, string> = {}) => sample(after, name, labels) - sample(before, name, labels);

    assert.ok(delta('snapclone_builds_total', { outcome: 'succeeded' }) >= 1, 'the build is counted');
    assert.equal(delta('snapclone_build_duration_seconds_count', { outcome: 'succeeded' }), delta('snapclone_builds_total', { outcome: 'succeeded' }));
    assert.ok(delta('snapclone_build_duration_seconds_sum', { outcome: 'succeeded' }) > 0);
    // Our own resolve plus the full clone's; and the shallow clone.
    assert.equal(delta('snapclone_clones_total', { mode: 'full' }), 2);
    assert.equal(delta('snapclone_clones_total', { mode: 'shallow' }), 1);
    assert.ok(delta('snapclone_resolve_duration_seconds_count', { outcome: 'served' }) >= 3);
    assert.equal(delta('snapclone_resolve_duration_seconds_count', { outcome: 'error' }), 1, 'the unknown repository');
    assert.equal(
      sample(after, 'snapclone_resolve_duration_seconds_bucket', { outcome: 'served', le: '+Inf' }),
      sample(after, 'snapclone_resolve_duration_seconds_count', { outcome: 'served' }),
    );
    // The clone downloaded at least the manifest and one artifact through this server.
    assert.ok(delta('snapclone_served_bytes_total', { route: 'artifacts' }) > resolved.json.manifest.size, 'artifact bytes are counted');
    assert.ok(delta('snapclone_served_bytes_total', { route: 'api' }) >= resolved.text.length);
    assert.equal(delta('snapclone_errors_total', { code: 'not-found' }), 1);
    assert.equal(delta('snapclone_errors_total', { code: 'artifact-missing' }), 1);
    assert.equal(delta('snapclone_errors_total', { code: 'invalid' }), 1);
    assert.ok(delta('snapclone_http_requests_total', { method: 'GET', status: '200' }) >= 4);
    assert.equal(delta('snapclone_http_requests_total', { method: 'POST', status: '400' }), 1);

    // A build that fails is counted as failed.
    renameSync(up.dir, `${up.dir}.gone`);
    const sync = await call(s.url, 'POST', '/v1/repos/demo/sync', {});
    assert.equal((await waitJob(s.url, sync.json.job.id)).state, 'failed');
    const failed = await scrape(s.url);
    assert.equal(sample(failed, 'snapclone_builds_total', { outcome: 'failed' }) - sample(after, 'snapclone_builds_total', { outcome: 'failed' }), 1);
    assert.equal(sample(failed, 'snapclone_build_duration_seconds_count', { outcome: 'failed' }) - sample(after, 'snapclone_build_duration_seconds_count', { outcome: 'failed' }), 1);
  } finally {
    await s.close();
  }
});

test('queue gauges follow the queue: a held build running and one queued behind it, then none', async () => {
  const work = tempDir();
  const gate = gatedSsh(work);
  const up = makeUpstream(work);
  const s = await startTestServer();
  try {
    await addPublicAndBuild(s.url, gate.url(up.dir), 'held');
    const idle = await scrape(s.url);
    assert.equal(sample(idle, 'snapclone_queue_jobs', { state: 'queued' }), 0);
    assert.equal(sample(idle, 'snapclone_queue_jobs', { state: 'running' }), 0);
    assert.equal(sample(idle, 'snapclone_queue_oldest_job_age_seconds'), 0);
    commit(up.dir, { 'b.txt': 'more\n' }, 'more');
    gate.shut();
    const first = await call(s.url, 'POST', '/v1/repos/held/sync', {});
    await waitRunning(s.url, first.json.job.id);
    const second = await call(s.url, 'POST', '/v1/repos/held/sync', {}); // one repository at a time: it waits
    assert.notEqual(second.json.job.id, first.json.job.id);
    const busy = await scrape(s.url);
    assert.equal(sample(busy, 'snapclone_queue_jobs', { state: 'running' }), 1);
    assert.equal(sample(busy, 'snapclone_queue_jobs', { state: 'queued' }), 1);
    assert.equal(sample(busy, 'snapclone_queue_jobs', { state: 'dead' }), 0);
    const age = sample(busy, 'snapclone_queue_oldest_job_age_seconds');
    const createdAt = second.json.job.createdAt as number;
    assert.ok(age >= 0 && age <= (Date.now() - createdAt) / 1000 + 1, `age ${age}`);
    gate.open();
    assert.equal((await waitJob(s.url, first.json.job.id)).state, 'succeeded');
    assert.equal((await waitJob(s.url, second.json.job.id)).state, 'succeeded');
    const done = await scrape(s.url);
    assert.equal(sample(done, 'snapclone_queue_jobs', { state: 'running' }), 0);
    assert.equal(sample(done, 'snapclone_queue_jobs', { state: 'queued' }), 0);
  } finally {
    gate.open();
    await s.close();
  }
});

test('with tokens configured, /metrics needs the admin or the metrics token; the metrics token opens nothing else; /readyz stays open', async () => {
  const s = await startTestServer({ adminToken: 'ADMIN-TOKEN-1', metricsToken: 'METRICS-TOKEN-1' });
  try {
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: 'METRICS-TOKEN-1' }] as Record<string, string>[]) {
      const r = await call(s.url, 'GET', '/metrics', undefined, headers);
      assert.equal(r.status, 401, JSON.stringify(headers));
      assert.equal(r.json.code, 'unauthorized');
      assert.doesNotMatch(r.text, /snapclone_/);
    }
    await scrape(s.url, { authorization: 'Bearer ADMIN-TOKEN-1' });
    const samples = await scrape(s.url, { authorization: 'Bearer METRICS-TOKEN-1' });
    assert.ok(sample(samples, 'snapclone_errors_total', { code: 'unauthorized' }) >= 3, 'the refusals are counted');
    const add = await call(s.url, 'POST', '/v1/repos', { url: '/nonexistent' }, { authorization: 'Bearer METRICS-TOKEN-1' });
    assert.equal(add.status, 401, 'the metrics token is not an admin token');
    const ready = await call(s.url, 'GET', '/readyz');
    assert.equal(ready.status, 200, ready.text);
  } finally {
    await s.close();
  }
  // The admin token alone closes it too (the metrics token may come from the environment).
  const prev = process.env.SNAPCLONE_METRICS_TOKEN;
  process.env.SNAPCLONE_METRICS_TOKEN = 'ENV-METRICS-TOKEN';
  const t = await startTestServer({ adminToken: 'ADMIN-TOKEN-2' });
  try {
    assert.equal((await call(t.url, 'GET', '/metrics')).status, 401);
    await scrape(t.url, { authorization: 'Bearer ENV-METRICS-TOKEN' });
    await scrape(t.url, { authorization: 'Bearer ADMIN-TOKEN-2' });
  } finally {
    if (prev === undefined) delete process.env.SNAPCLONE_METRICS_TOKEN;
    else process.env.SNAPCLONE_METRICS_TOKEN = prev;
    await t.close();
  }
});
