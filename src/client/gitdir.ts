/**
 * Write everything in .git except objects and the index, the way `git clone`
 * lays it out: HEAD, config (origin, upstream tracking), packed-refs with the
 * remote branches and tags, the loose refs git writes, reflogs, .git/shallow,
 * and the template files (description, info/exclude, hooks) when git's template
 * directory is on this machine.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir, hostname, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import type { Manifest, RefEntry } from '../clonepack/manifest.js';
import { formatPackedRefs, formatReflogLine, type Ident } from '../git/packed-refs.js';
import { formatGitConfig, type ConfigSection } from '../git/config-file.js';
import { localUtcOffset } from '../util/utc-offset.js';

export interface GitDirRequest {
  gitDir: string;
  manifest: Manifest;
  upstreamUrl: string;
  shallow: boolean;
}

const TEMPLATE_DIRS = ['/usr/share/git-core/templates', '/usr/local/share/git-core/templates'];
const DEFAULT_EXCLUDE = `# git ls-files --others --exclude-from=.git/info/exclude
# Lines that start with '#' are comments.
# For a project mostly in C, the following would be a good set of
# exclude patterns (uncomment them if you want to use them):
# *.[oa]
# *~
`;
const DEFAULT_DESCRIPTION = "Unnamed repository; edit this file 'description' to name the repository.\n";

export function writeGitDir(req: GitDirRequest): void {
  const { gitDir, manifest: m, upstreamUrl } = req;
  const put = (rel: string, text: string) => {
    const p = join(gitDir, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
  };
  copyTemplates(gitDir);
  for (const d of ['objects/info', 'objects/pack', 'refs/heads', 'refs/tags']) mkdirSync(join(gitDir, d), { recursive: true });

  const isTag = m.ref.startsWith('refs/tags/');
  const branch = isTag ? null : m.ref.slice('refs/heads/'.length);
  const commit = m.commit;
  const heads = m.refs.filter((r) => r.name.startsWith('refs/heads/'));
  const tags = m.refs.filter((r) => r.name.startsWith('refs/tags/'));
  const remoteHeadTarget = m.defaultBranch && heads.some((h) => h.name === `refs/heads/${m.defaultBranch}`) ? m.defaultBranch : null;
  const single = req.shallow; // git clone --depth implies --single-branch
  // A single-branch clone fetches only its ref; with no remote branch to follow
  // (an empty upstream, or a HEAD naming a missing branch) git writes no refspec.
  const fetch = !single ? '+refs/heads/*:refs/remotes/origin/*' : commit === null ? null : `+${m.ref}:${isTag ? m.ref : `refs/remotes/origin/${branch}`}`;

  const config: ConfigSection[] = [
    { name: 'core', entries: [['repositoryformatversion', '0'], ['filemode', 'true'], ['bare', 'false'], ['logallrefupdates', 'true']] },
    { name: 'remote', subsection: 'origin', entries: [['url', upstreamUrl], ...(fetch ? [['fetch', fetch] as [string, string]] : [])] },
  ];
  if (branch) config.push({ name: 'branch', subsection: branch, entries: [['remote', 'origin'], ['merge', m.ref]] });
  put('config', formatGitConfig(config));
  put('HEAD', branch ? `ref: ${m.ref}\n` : `${commit}\n`);
  if (commit === null) {
    // An unborn branch. An empty upstream leaves nothing else. When the upstream
    // has refs but its HEAD names a missing branch, git still writes packed-refs:
    // every branch and tag (a full clone), or none (--depth 1 fetched nothing).
    // No loose refs, no origin/HEAD, no reflogs: nothing was checked out.
    if (m.refs.length > 0) put('packed-refs', formatPackedRefs(single ? [] : [...heads.map(remoteBranch), ...tags]));
    return;
  }

  const ident = reflogIdent();
  const now = Math.floor(Date.now() / 1000);
  const tz = localUtcOffset(now);
  const log = (rel: string, oid: string) => put(join('logs', rel), formatReflogLine(null, oid, ident, now, tz, `clone: from ${upstreamUrl}`));

  let packed: RefEntry[];
  let loose: RefEntry[] = [];
  let remoteHead = remoteHeadTarget;
  if (single) {
    const own = m.refs.find((r) => r.name === m.ref)!;
    packed = isTag ? [own] : [{ name: `refs/remotes/origin/${branch}`, oid: commit }];
    // Tag following: every tag whose target was fetched (the commit, its trees or
    // blobs) comes along, as a loose ref. The builder lists them; manifests of
    // older builders did not, and their HEAD packs held only the tags on the commit.
    const followed = new Set(m.followedTags ?? tags.filter((t) => (t.peeled ?? t.oid) === commit).map((t) => t.name));
    loose = tags.filter((t) => t.name !== m.ref && followed.has(t.name));
    if (isTag || remoteHeadTarget !== branch) remoteHead = null;
  } else {
    packed = [...heads.map(remoteBranch), ...tags];
  }
  put('packed-refs', formatPackedRefs(packed));
  for (const t of loose) put(t.name, `${t.oid}\n`);
  if (branch) put(m.ref, `${commit}\n`);
  if (remoteHead) put('refs/remotes/origin/HEAD', `ref: refs/remotes/origin/${remoteHead}\n`);
  log('HEAD', commit);
  if (branch) log(m.ref, commit);
  if (remoteHead) log('refs/remotes/origin/HEAD', heads.find((h) => h.name === `refs/heads/${remoteHead}`)!.oid);
  if (req.shallow) put('shallow', `${commit}\n`);
}

/** refs/heads/<b> as the remote-tracking ref a clone makes of it. */
function remoteBranch(h: RefEntry): RefEntry {
  return { name: `refs/remotes/origin/${h.name.slice('refs/heads/'.length)}`, oid: h.oid };
}

function copyTemplates(gitDir: string): void {
  const dir = [process.env.GIT_TEMPLATE_DIR, ...TEMPLATE_DIRS].find((d) => d && existsSync(d));
  mkdirSync(gitDir, { recursive: true });
  if (dir) {
    cpSync(dir, gitDir, { recursive: true, preserveTimestamps: false });
    return;
  }
  for (const d of ['branches', 'hooks', 'info']) mkdirSync(join(gitDir, d), { recursive: true });
  writeFileSync(join(gitDir, 'description'), DEFAULT_DESCRIPTION);
  writeFileSync(join(gitDir, 'info/exclude'), DEFAULT_EXCLUDE);
}

/** Who the reflog says cloned: git's environment variables, then ~/.gitconfig's [user], then the login. */
function reflogIdent(): Ident {
  let name = process.env.GIT_COMMITTER_NAME;
  let email = process.env.GIT_COMMITTER_EMAIL;
  if (!name || !email) {
    const fromConfig = userFromGitConfig();
    name ??= fromConfig.name;
    email ??= fromConfig.email;
  }
  const login = safeLogin();
  const clean = (s: string) => s.replace(/[<>\n\0]/g, '').trim();
  return { name: clean(name ?? login) || login, email: clean(email ?? `${login}@${hostname()}`) };
}

function safeLogin(): string {
  try {
    return userInfo().username || 'unknown';
  } catch {
    return 'unknown';
  }
}

function userFromGitConfig(): { name?: string; email?: string } {
  const out: { name?: string; email?: string } = {};
  const files = [join(process.env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'git/config'), join(homedir(), '.gitconfig')];
  if (process.env.GIT_CONFIG_GLOBAL) files.splice(0, files.length, process.env.GIT_CONFIG_GLOBAL);
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    let inUser = false;
    for (const line of text.split('\n')) {
      const sec = /^\s*\[([^\]]+)\]/.exec(line);
      if (sec) inUser = sec[1]!.trim().toLowerCase() === 'user';
      const kv = inUser ? /^\s*(name|email)\s*=\s*(.*?)\s*$/i.exec(line) : null;
      if (kv) out[kv[1]!.toLowerCase() as 'name' | 'email'] = kv[2]!.replace(/^"(.*)"$/, '$1');
    }
  }
  return out;
}
