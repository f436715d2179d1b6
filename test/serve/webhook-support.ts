/**
 * Webhook test support: deliveries shaped like the ones GitHub, GitLab and
 * Gitea send (the fields snapclone reads plus the usual others around them),
 * signed as each provider signs them, and forge URLs that the server's git
 * reaches as local upstreams through `url.<dir>.insteadOf` (set in this
 * process's environment, as an operator would in the server's git config).
 */
import { createHmac, randomUUID } from 'node:crypto';

const rewrites: [string, string][] = [];

/** Make git (run by the in-process server) fetch `forgeUrl` from the local repository `dir`. */
export function serveForgeUrl(forgeUrl: string, dir: string): void {
  rewrites.push([dir, forgeUrl]);
  process.env.GIT_CONFIG_COUNT = String(rewrites.length);
  rewrites.forEach(([d, u], i) => {
    process.env[`GIT_CONFIG_KEY_${i}`] = `url.${d}.insteadOf`;
    process.env[`GIT_CONFIG_VALUE_${i}`] = u;
  });
}

export const ZERO = '0'.repeat(40);

export interface PushFacts {
  ref: string;
  before: string;
  after: string;
  /** owner/name on the forge */
  fullName: string;
  host: string;
}

export function githubPush(f: PushFacts): Record<string, unknown> {
  const [owner, name] = f.fullName.split('/');
  const deleted = f.after === ZERO;
  const base = `https://${f.host}/${f.fullName}`;
  return {
    ref: f.ref,
    before: f.before,
    after: f.after,
    repository: {
      id: 123456789,
      node_id: 'R_kgDOExample',
      name,
      full_name: f.fullName,
      private: false,
      owner: { name: owner, login: owner, id: 4242, type: 'Organization' },
      html_url: base,
      description: 'a test repository',
      fork: false,
      url: `https://api.${f.host}/repos/${f.fullName}`,
      git_url: `git://${f.host}/${f.fullName}.git`,
      ssh_url: `git@${f.host}:${f.fullName}.git`,
      clone_url: `${base}.git`,
      svn_url: base,
      default_branch: 'main',
      master_branch: 'main',
      pushed_at: 1700000000,
    },
    pusher: { name: 'octocat', email: 'octocat@example.invalid' },
    sender: { login: 'octocat', id: 1, type: 'User' },
    created: f.before === ZERO,
    deleted,
    forced: false,
    base_ref: null,
    compare: `${base}/compare/${f.before.slice(0, 12)}...${f.after.slice(0, 12)}`,
    commits: deleted ? [] : [{ id: f.after, tree_id: f.after, distinct: true, message: 'a change', timestamp: '2023-11-14T22:13:20Z', url: `${base}/commit/${f.after}`, author: { name: 'Test Author', email: 'author@example.invalid' }, added: [], removed: [], modified: ['README.md'] }],
    head_commit: deleted ? null : { id: f.after, message: 'a change' },
  };
}

export function gitlabPush(f: PushFacts, kind: 'push' | 'tag_push' = 'push'): Record<string, unknown> {
  const base = `https://${f.host}/${f.fullName}`;
  const project = {
    id: 15,
    name: f.fullName.split('/')[1],
    description: '',
    web_url: base,
    avatar_url: null,
    git_ssh_url: `git@${f.host}:${f.fullName}.git`,
    git_http_url: `${base}.git`,
    namespace: f.fullName.split('/')[0],
    visibility_level: 0,
    path_with_namespace: f.fullName,
    default_branch: 'main',
    homepage: base,
    url: `git@${f.host}:${f.fullName}.git`,
    ssh_url: `git@${f.host}:${f.fullName}.git`,
    http_url: `${base}.git`,
  };
  return {
    object_kind: kind,
    event_name: kind,
    before: f.before,
    after: f.after,
    ref: f.ref,
    ref_protected: true,
    checkout_sha: f.after === ZERO ? null : f.after,
    user_id: 4,
    user_name: 'John Smith',
    user_username: 'jsmith',
    project_id: 15,
    project,
    commits: [],
    total_commits_count: 0,
    repository: { name: project.name, url: project.url, description: '', homepage: base, git_http_url: project.git_http_url, git_ssh_url: project.git_ssh_url, visibility_level: 0 },
  };
}

export function giteaPush(f: PushFacts): Record<string, unknown> {
  const base = `https://${f.host}/${f.fullName}`;
  return {
    ref: f.ref,
    before: f.before,
    after: f.after,
    compare_url: `${base}/compare/${f.before}...${f.after}`,
    commits: [],
    total_commits: 0,
    head_commit: null,
    repository: {
      id: 1,
      owner: { id: 1, login: f.fullName.split('/')[0], username: f.fullName.split('/')[0] },
      name: f.fullName.split('/')[1],
      full_name: f.fullName,
      private: false,
      fork: false,
      html_url: base,
      ssh_url: `git@${f.host}:${f.fullName}.git`,
      clone_url: `${base}.git`,
      default_branch: 'main',
    },
    pusher: { id: 1, login: 'gitea', username: 'gitea' },
    sender: { id: 1, login: 'gitea', username: 'gitea' },
  };
}

export function hmacHex(secret: string, body: string | Buffer): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

export interface Delivery {
  status: number;
  json: any;
  text: string;
}

/** POST raw bytes to a hook endpoint with the given headers. */
export async function deliver(base: string, provider: string, body: string, headers: Record<string, string>): Promise<Delivery> {
  const res = await fetch(`${base}/v1/hooks/${provider}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, json, text };
}

/** The headers GitHub sends with a delivery, signed with `secret`. */
export function githubHeaders(event: string, secret: string, body: string): Record<string, string> {
  return { 'user-agent': 'GitHub-Hookshot/044aadd', 'x-github-event': event, 'x-github-delivery': randomUUID(), 'x-github-hook-id': '292430182', 'x-hub-signature-256': `sha256=${hmacHex(secret, body)}` };
}

export function gitlabHeaders(event: 'Push Hook' | 'Tag Push Hook', token: string): Record<string, string> {
  return { 'user-agent': 'GitLab/16.5.0', 'x-gitlab-event': event, 'x-gitlab-instance': 'https://gitlab.example.com', 'x-gitlab-token': token, 'x-gitlab-event-uuid': randomUUID() };
}

export function giteaHeaders(event: string, secret: string, body: string): Record<string, string> {
  return { 'user-agent': 'Go-http-client/1.1', 'x-gitea-event': event, 'x-gitea-delivery': randomUUID(), 'x-gitea-signature': hmacHex(secret, body), 'x-github-event': event };
}
