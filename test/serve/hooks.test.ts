/**
 * Webhooks against a real server and real upstreams: a signed push from
 * GitHub, GitLab or Gitea syncs the repositories registered for that upstream
 * and the new commit clones as git clone gives it; anything not signed with
 * the configured secret (over the exact bytes sent) is refused and changes
 * nothing; a branch delete stops serving the branch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { call, commit, git, makeUpstream, startTestServer, stderrLog, tempDir, waitJob } from './helpers.js';
import { addPublicAndBuild } from './public-upstream.js';
import { compareClones } from '../support/compare.js';
import { git as hermeticGit } from '../support/git.js';
import { cliOk } from '../e2e/harness.js';
import { deliver, githubHeaders, githubPush, giteaHeaders, giteaPush, gitlabHeaders, gitlabPush, serveForgeUrl, ZERO } from './webhook-support.js';

const GITHUB_SECRET = 'gh-secret-Zq8v1x';
const GITLAB_SECRET = 'gl-secret-Kp3m9w';
const GITEA_SECRET = 'gt-secret-Ry7c2d';
process.env.SNAPCLONE_GITHUB_WEBHOOK_SECRET = GITHUB_SECRET;
process.env.SNAPCLONE_GITLAB_WEBHOOK_SECRET = GITLAB_SECRET;
process.env.SNAPCLONE_GITEA_WEBHOOK_SECRET = GITEA_SECRET;

async function resolveCommit(base: string, name: string, ref = ''): Promise<{ status: number; commit: string | undefined }> {
  const r = await call(base, 'GET', `/v1/repos/${encodeURIComponent(name)}/resolve${ref ? `?ref=${encodeURIComponent(ref)}` : ''}`);
  return { status: r.status, commit: r.json?.commit };
}

async function jobCount(base: string, name: string): Promise<number> {
  return (await call(base, 'GET', `/v1/repos/${encodeURIComponent(name)}`)).json.jobs.length;
}

/** Clone NAME with the CLI and compare it with git clone of the upstream directory. */
async function assertClonesLikeGit(base: string, name: string, upstreamDir: string): Promise<void> {
  const work = tempDir('snapclone-hook-clone-');
  const g = join(work, 'g');
  const s = join(work, 's');
  hermeticGit(['clone', '--quiet', upstreamDir, g], { cwd: work });
  await cliOk(base, ['clone', name, s]);
  assert.deepEqual(compareClones(g, s, { mode: 'editable', ignoreConfigKeys: ['remote.origin.url'] }), []);
}

test('a signed push from GitHub, GitLab or Gitea syncs the matching repository and the new commit clones like git clone', async () => {
  const root = tempDir();
  const gh = makeUpstream(root, 'gh');
  const gl = makeUpstream(root, 'gl');
  const gt = makeUpstream(root, 'gt');
  serveForgeUrl('https://github.com/acme/widget.git', gh.dir);
  serveForgeUrl('https://gitlab.example.com/group/tool.git', gl.dir);
  // Registered in ssh:// form; Gitea's payload names it as git@host:path (one upstream).
  serveForgeUrl('ssh://git@gitea.example.com/acme/lib.git', gt.dir);
  const s = await startTestServer({ pollSeconds: 0 });
  try {
    await addPublicAndBuild(s.url, 'https://github.com/acme/widget.git', 'widget');
    await addPublicAndBuild(s.url, 'https://gitlab.example.com/group/tool.git', 'tool');
    await addPublicAndBuild(s.url, 'ssh://git@gitea.example.com/acme/lib.git', 'lib');

    const cases = [
      {
        name: 'widget',
        dir: gh.dir,
        before: gh.head,
        send: (after: string) => {
          const body = JSON.stringify(githubPush({ ref: 'refs/heads/main', before: gh.head, after, fullName: 'acme/widget', host: 'github.com' }));
          return deliver(s.url, 'github', body, githubHeaders('push', GITHUB_SECRET, body));
        },
      },
      {
        name: 'tool',
        dir: gl.dir,
        before: gl.head,
        send: (after: string) => {
          const body = JSON.stringify(gitlabPush({ ref: 'refs/heads/main', before: gl.head, after, fullName: 'group/tool', host: 'gitlab.example.com' }));
          return deliver(s.url, 'gitlab', body, gitlabHeaders('Push Hook', GITLAB_SECRET));
        },
      },
      {
        name: 'lib',
        dir: gt.dir,
        before: gt.head,
        send: (after: string) => {
          const body = JSON.stringify(giteaPush({ ref: 'refs/heads/main', before: gt.head, after, fullName: 'acme/lib', host: 'gitea.example.com' }));
          return deliver(s.url, 'gitea', body, giteaHeaders('push', GITEA_SECRET, body));
        },
      },
    ];
    for (const c of cases) {
      const pushed = commit(c.dir, { 'README.md': `# pushed to ${c.name}\n`, 'new/file.txt': 'new\n' }, `push to ${c.name}`);
      const r = await c.send(pushed);
      assert.equal(r.status, 202, r.text);
      assert.deepEqual(r.json.matched, [c.name], r.text);
      assert.equal(r.json.jobs.length, 1);
      const job = await waitJob(s.url, r.json.jobs[0].id);
      assert.equal(job.state, 'succeeded', job.error);
      assert.equal(job.commit, pushed);
      assert.equal((await resolveCommit(s.url, c.name)).commit, pushed);
      await assertClonesLikeGit(s.url, c.name, c.dir);
    }
  } finally {
    await s.close();
  }
});

test('deliveries not signed with the configured secret are refused (401) and change nothing; the secret is never logged', async () => {
  const up = makeUpstream(tempDir(), 'guarded');
  serveForgeUrl('https://github.com/acme/guarded.git', up.dir);
  serveForgeUrl('https://gitlab.example.com/acme/guarded.git', up.dir);
  serveForgeUrl('https://gitea.example.com/acme/guarded.git', up.dir);
  const s = await startTestServer({ pollSeconds: 0 });
  try {
    await addPublicAndBuild(s.url, 'https://github.com/acme/guarded.git', 'guarded');
    await addPublicAndBuild(s.url, 'https://gitlab.example.com/acme/guarded.git', 'guarded-gl');
    await addPublicAndBuild(s.url, 'https://gitea.example.com/acme/guarded.git', 'guarded-gt');
    const before = { gh: await jobCount(s.url, 'guarded'), gl: await jobCount(s.url, 'guarded-gl'), gt: await jobCount(s.url, 'guarded-gt') };
    const pushed = commit(up.dir, { 'README.md': 'moved\n' }, 'moved');
    const facts = { ref: 'refs/heads/main', before: up.head, after: pushed, fullName: 'acme/guarded', host: 'github.com' };
    const payload = githubPush(facts);
    const body = JSON.stringify(payload);
    const good = githubHeaders('push', GITHUB_SECRET, body);

    // One at a time (thunks), so a failing check ends the test with nothing left in flight.
    const refused: [string, () => Promise<{ status: number; text: string }>][] = [
      ['wrong secret', () => deliver(s.url, 'github', body, githubHeaders('push', 'not-the-secret', body))],
      ['no signature header', () => deliver(s.url, 'github', body, { ...good, 'x-hub-signature-256': '' })],
      ['sha1 signature only', () => deliver(s.url, 'github', body, { 'x-github-event': 'push', 'x-hub-signature': 'sha1=0123456789abcdef0123456789abcdef01234567' })],
      ['malformed signature', () => deliver(s.url, 'github', body, { ...good, 'x-hub-signature-256': good['x-hub-signature-256']!.slice(7) })],
      // The same JSON value re-serialized (other whitespace): the signature is over the bytes.
      ['re-serialized body', () => deliver(s.url, 'github', JSON.stringify(payload, null, 2), good)],
      ['one byte changed', () => deliver(s.url, 'github', body.replace('"ref":"refs/heads/main"', '"ref":"refs/heads/mair"'), good)],
      ['wrong GitLab token', () => deliver(s.url, 'gitlab', JSON.stringify(gitlabPush({ ...facts, host: 'gitlab.example.com' })), gitlabHeaders('Push Hook', `${GITLAB_SECRET}x`))],
      ['GitLab token missing', () => deliver(s.url, 'gitlab', JSON.stringify(gitlabPush({ ...facts, host: 'gitlab.example.com' })), { 'x-gitlab-event': 'Push Hook' })],
      [
        'Gitea signed with another secret',
        () => {
          const b = JSON.stringify(giteaPush({ ...facts, host: 'gitea.example.com' }));
          return deliver(s.url, 'gitea', b, giteaHeaders('push', GITHUB_SECRET, b));
        },
      ],
      ['Gitea signature missing', () => deliver(s.url, 'gitea', JSON.stringify(giteaPush({ ...facts, host: 'gitea.example.com' })), { 'x-gitea-event': 'push' })],
    ];
    for (const [what, answer] of refused) {
      const r = await answer();
      assert.equal(r.status, 401, `${what}: ${r.text}`);
      assert.equal(JSON.parse(r.text).code, 'unauthorized', what);
    }
    // No secret configured for a provider: refused outright (404 with how to turn it on), even when signed.
    delete process.env.SNAPCLONE_GITHUB_WEBHOOK_SECRET;
    try {
      const off = await deliver(s.url, 'github', body, good);
      assert.equal(off.status, 404, off.text);
      assert.match(JSON.parse(off.text).error, /SNAPCLONE_GITHUB_WEBHOOK_SECRET/);
      const empty = await deliver(s.url, 'github', body, githubHeaders('push', '', body));
      assert.equal(empty.status, 404, empty.text);
    } finally {
      process.env.SNAPCLONE_GITHUB_WEBHOOK_SECRET = GITHUB_SECRET;
    }
    assert.equal((await deliver(s.url, 'bitbucket', body, good)).status, 404);

    // Nothing was queued, nothing changed.
    assert.deepEqual({ gh: await jobCount(s.url, 'guarded'), gl: await jobCount(s.url, 'guarded-gl'), gt: await jobCount(s.url, 'guarded-gt') }, before);
    for (const n of ['guarded', 'guarded-gl', 'guarded-gt']) assert.equal((await resolveCommit(s.url, n)).commit, up.head);
    const log = stderrLog.join('');
    assert.match(log, /webhook github: refused a delivery/);
    for (const secret of [GITHUB_SECRET, GITLAB_SECRET, GITEA_SECRET]) assert.ok(!log.includes(secret), 'a secret was logged');

    // The genuine delivery still works afterwards.
    const ok = await deliver(s.url, 'github', body, good);
    assert.equal(ok.status, 202, ok.text);
    assert.equal((await waitJob(s.url, ok.json.jobs[0].id)).commit, pushed);
  } finally {
    await s.close();
  }
});

test('ping answers 200; a push for an unregistered upstream matches nothing; one upstream under several names syncs them all', async () => {
  const up = makeUpstream(tempDir(), 'shared');
  serveForgeUrl('https://github.com/acme/shared.git', up.dir);
  serveForgeUrl('https://github.com/acme/shared', up.dir);
  const s = await startTestServer({ pollSeconds: 0 });
  try {
    const pingBody = JSON.stringify({ zen: 'Keep it logically awesome.', hook_id: 1, hook: { type: 'Repository', events: ['push'] }, repository: githubPush({ ref: 'refs/heads/main', before: ZERO, after: ZERO, fullName: 'acme/shared', host: 'github.com' }).repository });
    const ping = await deliver(s.url, 'github', pingBody, githubHeaders('ping', GITHUB_SECRET, pingBody));
    assert.equal(ping.status, 200, ping.text);
    assert.deepEqual(ping.json.jobs, []);

    const pushed = commit(up.dir, { 'x.txt': 'x\n' }, 'x');
    const elsewhere = JSON.stringify(githubPush({ ref: 'refs/heads/main', before: up.head, after: pushed, fullName: 'acme/unknown', host: 'github.com' }));
    const none = await deliver(s.url, 'github', elsewhere, githubHeaders('push', GITHUB_SECRET, elsewhere));
    assert.equal(none.status, 202, none.text);
    assert.deepEqual(none.json.matched, []);
    assert.deepEqual(none.json.jobs, []);

    await addPublicAndBuild(s.url, 'https://github.com/acme/shared.git', 'shared');
    await addPublicAndBuild(s.url, 'https://github.com/acme/shared', 'shared-too'); // html_url spelling
    const again = commit(up.dir, { 'y.txt': 'y\n' }, 'y');
    const body = JSON.stringify(githubPush({ ref: 'refs/heads/main', before: pushed, after: again, fullName: 'acme/shared', host: 'github.com' }));
    const r = await deliver(s.url, 'github', body, githubHeaders('push', GITHUB_SECRET, body));
    assert.equal(r.status, 202, r.text);
    assert.deepEqual(r.json.matched, ['shared', 'shared-too']);
    for (const j of r.json.jobs) assert.equal((await waitJob(s.url, j.id)).commit, again);
    for (const n of ['shared', 'shared-too']) assert.equal((await resolveCommit(s.url, n)).commit, again);
  } finally {
    await s.close();
  }
});

test('a branch delete (GitHub) and a tag delete (GitLab) stop serving the ref; resolve then answers not-found', async () => {
  const up = makeUpstream(tempDir(), 'deleting');
  serveForgeUrl('https://github.com/acme/deleting.git', up.dir);
  serveForgeUrl('https://gitlab.example.com/acme/deleting.git', up.dir);
  const s = await startTestServer({ pollSeconds: 0 });
  try {
    await addPublicAndBuild(s.url, 'https://github.com/acme/deleting.git', 'deleting');
    await addPublicAndBuild(s.url, 'https://gitlab.example.com/acme/deleting.git', 'deleting-gl');
    for (const [name, branch] of [['deleting', 'dev'], ['deleting-gl', 'v1']] as const) {
      const r = await call(s.url, 'POST', `/v1/repos/${name}/sync`, { branch });
      assert.equal((await waitJob(s.url, r.json.job.id)).state, 'succeeded');
      assert.equal((await resolveCommit(s.url, name, branch)).status, 200);
    }
    const devTip = git(up.dir, ['rev-parse', 'dev']);
    const tagTip = git(up.dir, ['rev-parse', 'v1']);
    git(up.dir, ['branch', '-D', 'dev']);
    git(up.dir, ['tag', '-d', 'v1']);

    const ghBody = JSON.stringify(githubPush({ ref: 'refs/heads/dev', before: devTip, after: ZERO, fullName: 'acme/deleting', host: 'github.com' }));
    const gh = await deliver(s.url, 'github', ghBody, githubHeaders('push', GITHUB_SECRET, ghBody));
    assert.equal(gh.status, 202, gh.text);
    assert.deepEqual(gh.json.removed, [{ repo: 'deleting', ref: 'refs/heads/dev' }]);
    const glBody = JSON.stringify(gitlabPush({ ref: 'refs/tags/v1', before: tagTip, after: ZERO, fullName: 'acme/deleting', host: 'gitlab.example.com' }, 'tag_push'));
    const gl = await deliver(s.url, 'gitlab', glBody, gitlabHeaders('Tag Push Hook', GITLAB_SECRET));
    assert.equal(gl.status, 202, gl.text);
    assert.deepEqual(gl.json.removed, [{ repo: 'deleting-gl', ref: 'refs/tags/v1' }]);

    for (const [name, ref, answer] of [['deleting', 'dev', gh], ['deleting-gl', 'v1', gl]] as const) {
      const job = await waitJob(s.url, answer.json.jobs[0].id);
      assert.equal(job.state, 'succeeded', job.error);
      const st = await call(s.url, 'GET', `/v1/repos/${name}`);
      assert.ok(!st.json.refs.some((r: any) => r.ref.endsWith(`/${ref}`)), JSON.stringify(st.json.refs));
      const after = await call(s.url, 'GET', `/v1/repos/${name}/resolve?ref=${ref}`);
      assert.equal(after.status, 404, after.text);
      assert.equal(after.json.code, 'not-found');
      assert.equal((await resolveCommit(s.url, name)).commit, up.head, 'the default branch still serves');
    }
  } finally {
    await s.close();
  }
});
