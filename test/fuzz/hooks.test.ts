/**
 * Properties of the webhook payload handling (src/serve/hooks.ts): the body
 * parser refuses anything but a JSON object with a SnapError; parseEvent turns
 * any payload of any provider into a well-formed event (URLs bounded, a deleted
 * ref only when it is a valid branch or tag ref) and never throws; generated
 * push payloads of each provider give back their URLs and deleted ref;
 * matchRepos and the signature check never throw on hostile strings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import fc from 'fast-check';
import { matchRepos, parseEvent, signatureProblem, type Provider } from '../../src/serve/hooks.js';
import { parseJsonObject } from '../../src/serve/http-util.js';
import { isValidRefName } from '../../src/clonepack/refs.js';
import type { RepoRecord } from '../../src/metadata/metadata-store.js';
import { fuzzParams, mutated, parsesOrRefuses, parsesOrRefusesAsync } from './fuzz-support.js';

const provider = fc.constantFrom<Provider>('github', 'gitlab', 'gitea');
const eventName = fc.option(fc.oneof(fc.constantFrom('push', 'ping', 'create', 'delete', 'Push Hook', 'Tag Push Hook', 'System Hook', 'issues'), fc.string({ maxLength: 20 })), { nil: undefined });
const zero = fc.constantFrom('0'.repeat(40), '0'.repeat(64));
const anyRef = fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('refs/heads/main', 'refs/tags/v1', 'main', 'refs/heads/../x', 'refs/heads/a b', 'refs/notes/x', 'refs/heads/x.lock'));
const urlish = fc.oneof(fc.webUrl(), fc.constantFrom('git@github.com:o/r.git', 'ssh://git@h/o/r', '/srv/git/r', 'file:///srv/r', 'x'.repeat(3000), ''), fc.string({ maxLength: 40 }));
const repoObj = fc.record({ clone_url: urlish, ssh_url: urlish, git_url: urlish, html_url: urlish, git_http_url: urlish, git_ssh_url: urlish, homepage: urlish, url: urlish, web_url: urlish }, { requiredKeys: [] });

/** Payloads shaped like the forges' (with any field possibly missing or of the wrong type), and any JSON object. */
const payload = fc.oneof(
  fc.record(
    {
      ref: fc.oneof(anyRef, fc.jsonValue()),
      after: fc.oneof(zero, fc.string({ maxLength: 64 }), fc.jsonValue()),
      deleted: fc.oneof(fc.boolean(), fc.jsonValue()),
      ref_type: fc.oneof(fc.constantFrom('branch', 'tag', 'repository'), fc.jsonValue()),
      object_kind: fc.oneof(fc.constantFrom('push', 'tag_push', 'merge_request'), fc.jsonValue()),
      repository: fc.oneof(repoObj, fc.jsonValue()),
      project: fc.oneof(repoObj, fc.jsonValue()),
    },
    { requiredKeys: [] },
  ),
  fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue()),
);

test('parseEvent: any payload of any provider gives a well-formed event, never an exception', () => {
  fc.assert(
    fc.property(provider, eventName, payload, (p, ev, body) => {
      const e = parseEvent(p, ev, body as Record<string, unknown>);
      assert.ok(['ping', 'push', 'ignored'].includes(e.kind));
      assert.equal(typeof e.event, 'string');
      for (const u of e.urls) assert.ok(typeof u === 'string' && u.length > 0 && u.length <= 2048);
      if (e.deleted !== null) assert.ok(/^refs\/(heads|tags)\//.test(e.deleted) && isValidRefName(e.deleted), e.deleted);
      if (e.kind !== 'push') assert.equal(e.deleted, null);
    }),
    fuzzParams(1500),
  );
});

const branch = fc.stringMatching(/^[a-z][a-z0-9-]{0,12}(\/[a-z0-9]{1,6})?$/);
const cloneUrl = fc.tuple(fc.domain(), fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/), fc.stringMatching(/^[a-z][a-z0-9.-]{0,10}$/)).map(([h, o, r]) => `https://${h}/${o}/${r}.git`);

test('generated push payloads of each provider: the event names their repository URL and the ref they delete', () => {
  fc.assert(
    fc.property(provider, cloneUrl, fc.constantFrom('heads', 'tags'), branch, fc.boolean(), (p, u, kind, name, deleting) => {
      const ref = `refs/${kind}/${name}`;
      const after = deleting ? '0'.repeat(40) : 'a'.repeat(40);
      const body =
        p === 'gitlab'
          ? { object_kind: kind === 'tags' ? 'tag_push' : 'push', ref, after, project: { git_http_url: u } }
          : { ref, after, deleted: deleting, repository: { clone_url: u } };
      const e = parseEvent(p, p === 'gitlab' ? (kind === 'tags' ? 'Tag Push Hook' : 'Push Hook') : 'push', body);
      assert.equal(e.kind, 'push');
      assert.deepEqual(e.urls, [u]);
      assert.equal(e.deleted, deleting ? ref : null);
    }),
    fuzzParams(500),
  );
});

test('webhook bodies: any bytes are a JSON object or refused with a SnapError', () => {
  const bodies = fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
    mutated(payload.map((v) => Buffer.from(JSON.stringify(v)))),
  );
  fc.assert(
    fc.property(bodies, (b) => {
      const out = parsesOrRefuses(() => parseJsonObject(b, 'webhook body'));
      if (out.ok) assert.ok(typeof out.value === 'object' && out.value !== null && !Array.isArray(out.value));
    }),
    fuzzParams(1500),
  );
});

test('matchRepos: any payload URLs against any registered URLs never throws, and a repository matches its own URL', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(urlish, { maxLength: 4 }), fc.array(urlish, { minLength: 1, maxLength: 4 }), async (urls, registered) => {
      const repos: RepoRecord[] = registered.map((u, i) => ({ name: `r${i}`, url: u, defaultBranch: null, createdAt: 0, visibility: 'public' as const }));
      const meta = { listRepos: async () => repos };
      const out = await parsesOrRefusesAsync(() => matchRepos(meta, urls));
      assert.ok(out.ok);
      for (const n of out.value) assert.ok(repos.some((r) => r.name === n));
      const own = await matchRepos(meta, [registered[0]!]);
      assert.ok(own.includes('r0'), `${JSON.stringify(registered[0])} does not match itself`);
    }),
    fuzzParams(500),
  );
});

test('signature check: any header values give a reason or null, never an exception; the right signature passes', () => {
  const secret = 's3cret';
  const headerValue = fc.option(fc.oneof(fc.string({ maxLength: 80 }), fc.uint8Array({ minLength: 32, maxLength: 32 }).map((h) => `sha256=${Buffer.from(h).toString("hex")}`)), { nil: undefined });
  fc.assert(
    fc.property(provider, headerValue, fc.uint8Array({ maxLength: 200 }), (p, value, raw) => {
      const body = Buffer.from(raw);
      const name = p === 'github' ? 'x-hub-signature-256' : p === 'gitea' ? 'x-gitea-signature' : 'x-gitlab-token';
      const req = (v: string | undefined) => ({ headers: v === undefined ? {} : { [name]: v }, socket: {} }) as unknown as IncomingMessage;
      const problem = signatureProblem(p, secret, req(value), body);
      assert.ok(problem === null || (typeof problem === 'string' && !problem.includes(secret)));
      if (problem === null) assert.ok(value !== undefined);
      const mac = createHmac('sha256', secret).update(body).digest('hex');
      const right = p === 'gitlab' ? secret : p === 'github' ? `sha256=${mac}` : mac;
      assert.equal(signatureProblem(p, secret, req(right), body), null);
    }),
    fuzzParams(1000),
  );
});

test('a GitLab payload whose object_kind is an object that cannot become a string is ignored (was a TypeError)', () => {
  for (const text of ['{"object_kind":{"toString":0}}', '{"object_kind":{"toString":0,"valueOf":0}}', '{"object_kind":[{"toString":1}]}']) {
    const e = parsesOrRefuses(() => parseEvent('gitlab', undefined, parseJsonObject(Buffer.from(text), 'webhook body')));
    assert.ok(e.ok && e.value.kind === 'ignored', text);
  }
});
