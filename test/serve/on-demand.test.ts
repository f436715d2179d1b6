/**
 * On-demand builds of refs nobody registered (a first resolve of an unbuilt
 * tag) are bounded per repository when the server has an admin token: one job
 * per ref, at most 2 queued or running at once, at most 10 started per hour;
 * beyond that 429 rate-limited. A request with the admin token is not limited.
 * The bound is documented in docs/API.md; these numbers are the documented ones.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, git, makeUpstream, startTestServer, tempDir, waitJob } from './helpers.js';
import { addPublicAndBuild } from './public-upstream.js';
import { gatedSsh, waitRunning } from './gated-upstream.js';
import { OnDemandBuilds } from '../../src/serve/on-demand.js';

const MAX_ACTIVE = 2;
const PER_HOUR = 10;
const ADMIN = { authorization: 'Bearer t0ken' };

test('anonymous on-demand builds are coalesced, bounded per repository and rate-limited; the admin token is not', async () => {
  const work = tempDir();
  const gate = gatedSsh(work);
  const up = makeUpstream(work);
  const tags = Array.from({ length: PER_HOUR + 2 }, (_, i) => `t${i + 1}`);
  for (const t of tags) git(up.dir, ['tag', t, 'HEAD~1']);
  const s = await startTestServer({ adminToken: 't0ken' });
  try {
    await addPublicAndBuild(s.url, gate.url(up.dir), 'limited', ADMIN);
    const resolveTag = (t: string, headers: Record<string, string> = {}) => call(s.url, 'GET', `/v1/repos/limited/resolve?ref=${t}`, undefined, headers);

    // Hold the repository's queue: an admin sync waits at the gate, so on-demand jobs stay queued.
    gate.shut();
    const hold = await call(s.url, 'POST', '/v1/repos/limited/sync', {}, ADMIN);
    assert.equal(hold.status, 202, hold.text);
    await waitRunning(s.url, hold.json.job.id);

    const a = await resolveTag('t1');
    assert.equal(a.status, 202, a.text);
    const again = await resolveTag('t1');
    assert.equal(again.status, 202, again.text);
    assert.equal(again.json.job.id, a.json.job.id, 'a second request for the same ref joins the first job');
    const b = await resolveTag('t2');
    assert.equal(b.status, 202, b.text);
    assert.notEqual(b.json.job.id, a.json.job.id);
    const c = await resolveTag('t3');
    assert.equal(c.status, 429, c.text);
    assert.equal(c.json.code, 'rate-limited');
    assert.match(c.json.error, /limited/);
    assert.ok(Number(c.headers.get('retry-after')) > 0, 'a 429 says when to retry');
    // A wrong token is just anonymous; the right one is not limited.
    assert.equal((await resolveTag('t3', { authorization: 'Bearer wrong' })).status, 429);
    const admin = await resolveTag('t3', ADMIN);
    assert.equal(admin.status, 202, admin.text);

    gate.open();
    for (const id of [hold.json.job.id, a.json.job.id, b.json.job.id, admin.json.job.id]) {
      const j = await waitJob(s.url, id);
      assert.equal(j.state, 'succeeded', j.error);
    }
    for (const t of ['t1', 't2', 't3']) assert.equal((await resolveTag(t)).status, 200, t);

    // The hourly bucket: 2 of 10 anonymous builds are used; 8 more start, one at a time, then 429.
    const rest = tags.slice(3);
    for (const t of rest.slice(0, PER_HOUR - MAX_ACTIVE)) {
      const r = await resolveTag(t);
      assert.equal(r.status, 202, `${t}: ${r.text}`);
      assert.equal((await waitJob(s.url, r.json.job.id)).state, 'succeeded');
    }
    const over = await resolveTag(rest[PER_HOUR - MAX_ACTIVE]!);
    assert.equal(over.status, 429, over.text);
    assert.equal(over.json.code, 'rate-limited');
    // Built refs are still served to anyone, and the admin can still build.
    assert.equal((await resolveTag('t1')).status, 200);
    const adminLate = await resolveTag(rest[PER_HOUR - MAX_ACTIVE]!, ADMIN);
    assert.equal(adminLate.status, 202, adminLate.text);
    assert.equal((await waitJob(s.url, adminLate.json.job.id)).state, 'succeeded');
  } finally {
    gate.open();
    await s.close();
  }
});

test('the token bucket refills at its hourly rate and holds at most its capacity', async () => {
  let now = 0;
  const active = new Set<number>();
  const od = new OnDemandBuilds({ maxActive: 5, perHour: 4 }, async (id) => active.has(id), () => now);
  let next = 1;
  const start = async () => {
    const id = next++;
    active.add(id);
    return { id };
  };
  const done = () => active.clear();
  for (let i = 0; i < 4; i++) await od.start('r', start);
  done();
  await assert.rejects(od.start('r', start), /per hour/);
  await od.start('other', start); // per repository
  done();
  now += 15 * 60_000; // a quarter hour: one build
  await od.start('r', start);
  done();
  await assert.rejects(od.start('r', start), /per hour/);
  now += 10 * 3_600_000; // a long pause fills the bucket to its capacity, no more
  for (let i = 0; i < 4; i++) {
    await od.start('r', start);
    done();
  }
  await assert.rejects(od.start('r', start), /per hour/);
  // A job the queue coalesced into one already counted costs nothing.
  now += 30 * 60_000; // two builds
  const job = await od.start('r', start);
  assert.equal(await od.start('r', async () => job), job);
  await od.start('r', start);
  done();
  await assert.rejects(od.start('r', start), /per hour/);
  // At most maxActive at once, whatever the bucket holds.
  const tight = new OnDemandBuilds({ maxActive: 2, perHour: 100 }, async (id) => active.has(id), () => now);
  await tight.start('r', start);
  await tight.start('r', start);
  await assert.rejects(tight.start('r', start), /queued or running/);
  done();
  await tight.start('r', start);
});

test('concurrent starts whose enqueue has not answered yet count as active: no more than maxActive pass', async () => {
  const active = new Set<number>();
  const od = new OnDemandBuilds({ maxActive: 2, perHour: 100 }, async (id) => active.has(id));
  let next = 1;
  const slow = async () => {
    await new Promise((r) => setTimeout(r, 20)); // a database round trip
    const id = next++;
    active.add(id);
    return { id };
  };
  const results = await Promise.allSettled([od.start('r', slow), od.start('r', slow), od.start('r', slow), od.start('r', slow)]);
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 2);
  assert.ok(results.filter((r) => r.status === 'rejected').every((r) => /queued or running/.test(String((r as PromiseRejectedResult).reason))));
  // A failed enqueue gives its token and its place back.
  active.clear();
  await assert.rejects(od.start('r', async () => Promise.reject(new Error('db down'))), /db down/);
  await od.start('r', slow);
  await od.start('r', slow);
});
