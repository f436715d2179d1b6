/** --help texts. Keep in step with README.md and the commands. */
export const HELP = `snapclone: clone git repositories from prebuilt clonepacks

Usage:
  snapclone serve   [--host 127.0.0.1] [--port 7420] [--data-dir DIR] [--build-concurrency 1] [--no-builds] [--poll-seconds 180]
  snapclone worker  [--data-dir DIR] [--concurrency 1] [--listen HOST:PORT]
  snapclone add     <upstream-url> [--name NAME] [--visibility public|private] [--no-wait]
  snapclone sync    NAME [--branch B] [--no-wait]
  snapclone status  NAME [--json]
  snapclone list    [--json]
  snapclone remove  NAME [--json]
  snapclone set-url NAME URL [--no-wait] [--json]
  snapclone gc      [--dry-run] [--json]
  snapclone clone   NAME [DIR] [-b|--branch B] [--depth 1] [--mode editable|files] [--timeout SECONDS] [--proxy] [-q|--quiet] [--json] [--bench]
  snapclone --version | --help | help <command>

Client commands talk to --server URL, else $SNAPCLONE_SERVER, else http://127.0.0.1:7420
(a URL holding a user name or password is refused: the token goes in $SNAPCLONE_TOKEN).
Admin commands (add, sync, remove, set-url, gc) send $SNAPCLONE_TOKEN as a bearer token when it is set.
Exit status is 0 on success; otherwise a one-line reason is printed on stderr (exit codes: README.md).
`;

export const COMMAND_HELP: Record<string, string> = {
  serve: `Usage: snapclone serve [--host 127.0.0.1] [--port 7420] [--data-dir DIR] [--build-concurrency 1] [--no-builds] [--poll-seconds 180]

Run the server in the foreground, logging JSON lines to stderr. GET /healthz answers 200 once it
is up; GET /readyz 503 while its database or artifact store does not answer; GET /metrics is
Prometheus text (it needs the admin token, or $SNAPCLONE_METRICS_TOKEN, when either is set).
Data (bare mirrors, artifacts, SQLite metadata) lives in --data-dir, else $SNAPCLONE_DATA_DIR,
else ~/.local/share/snapclone. Listening beyond loopback needs $SNAPCLONE_ADMIN_TOKEN, which
the admin commands (add, sync, remove, set-url) must then present. One server per data dir
(another exits 14). SIGINT, SIGTERM or SIGHUP stop it once running builds end.
Engines: artifacts go to an S3-compatible bucket when $SNAPCLONE_S3_BUCKET is set, and clients
then download straight from it through presigned URLs; metadata and the build queue go to
PostgreSQL when $SNAPCLONE_DATABASE_URL is set, which lets any number of servers and workers
share them (docs/DEPLOY.md). --no-builds (PostgreSQL only) serves without building: workers build.
Freshness: every upstream is asked for its tips (git ls-remote) once per --poll-seconds (else
$SNAPCLONE_POLL_SECONDS, else 180; 0 turns polling off, at least 1), spread over the interval, and synced when
they moved; after each sync it is asked once more (at most 3 re-syncs in a row). Webhooks:
POST /v1/hooks/github|gitlab|gitea, each on only when $SNAPCLONE_GITHUB_WEBHOOK_SECRET,
$SNAPCLONE_GITLAB_WEBHOOK_SECRET or $SNAPCLONE_GITEA_WEBHOOK_SECRET is set (docs/API.md).
Garbage collection runs every $SNAPCLONE_GC_INTERVAL_SECONDS (default 3600, 0 off; snapclone help gc);
a sync repacks a mirror holding more than $SNAPCLONE_MIRROR_MAX_PACKS packs (default 20, 0 never).
Upstreams are bounded: ls-remote by $SNAPCLONE_UPSTREAM_TIMEOUT_SECONDS (default 120), a fetch by
$SNAPCLONE_FETCH_TIMEOUT_SECONDS (3600), and receiving nothing by $SNAPCLONE_UPSTREAM_STALL_SECONDS
(300); a sync stopped so fails with code timeout, a full disk with code io, and the previous build
keeps serving.
`,
  worker: `Usage: snapclone worker [--data-dir DIR] [--concurrency 1] [--listen HOST:PORT]

Claim sync jobs from the shared queue and build them, in the foreground, logging JSON lines to
stderr. Needs $SNAPCLONE_DATABASE_URL (postgres://…: the queue, refs and builds every server and
worker share) and, across machines, $SNAPCLONE_S3_BUCKET (the artifacts; docs/DEPLOY.md). Its data
dir (--data-dir, else $SNAPCLONE_DATA_DIR, else ~/.local/share/snapclone: mirrors, scratch space,
the bucket's disk cache) is disposable; a fresh one bootstraps each mirror from the store's
history packs. A claimed job is leased for $SNAPCLONE_LEASE_SECONDS (default 30), renewed while
it runs: a worker that dies loses no job (another takes it over once the lease runs out; after
3 such attempts the job is dead, shown by status). --concurrency jobs at once (one per repository).
--listen serves GET /healthz, /readyz and /metrics (this worker's builds by outcome and duration;
the admin token or $SNAPCLONE_METRICS_TOKEN is needed when either is set, and beyond loopback).
SIGINT, SIGTERM or SIGHUP stop it once running builds end.
`,
  add: `Usage: snapclone add <upstream-url> [--name NAME] [--visibility public|private] [--no-wait] [--quiet] [--server URL] [--json]

Register an upstream (https://, ssh://, git://, file://, user@host:path or a local path) and build it.
NAME defaults to the URL's last path segment without .git. A name is segments of letters, digits,
'.', '_', '-' separated by '/'; no segment may be all dots or .git. Without --no-wait, returns when
every clone mode of the default branch is ready. Adding the same name and URL again changes nothing.
Visibility: without --visibility, a local path or file:// URL is public, and an http(s) upstream is
asked anonymously (readable: public; 401/403: private; anything else is refused: say which);
ssh://, git:// and user@host:path need --visibility. A private repository is read only with the
admin token or the caller's own upstream credential, which the server checks against the upstream.
`,
  sync: `Usage: snapclone sync NAME [--branch B] [--no-wait] [--quiet] [--server URL] [--json]

Fetch the upstream and build what changed: the default branch and every branch or tag built before,
or only B with --branch.
`,
  gc: `Usage: snapclone gc [--dry-run] [--json] [--server URL]

Run a garbage collection pass on the server now (it also runs every
$SNAPCLONE_GC_INTERVAL_SECONDS, default 3600, 0 off). It deletes artifacts that no published
ref, no retained older manifest ($SNAPCLONE_GC_RETAIN per ref and mode, default 3) and no level
chain has named for $SNAPCLONE_GC_GRACE_SECONDS (default 3600; longer than the longest clone),
and never while a build runs (those wait for the next pass). Prints counts and bytes deleted,
still in grace and deferred. --dry-run deletes and records nothing: it shows what a pass would
delete now. Needs the admin token.
`,
  status: `Usage: snapclone status NAME [--json] [--server URL]

Show the upstream, built refs with commits and artifact sizes per clone mode, and recent builds;
with the admin token also the store's garbage: unreachable artifacts and the bytes a gc pass
would reclaim now.
`,
  list: `Usage: snapclone list [--json] [--server URL]

List the registered repositories: name, upstream URL and default branch.
`,
  remove: `Usage: snapclone remove NAME [--json] [--server URL]

Unregister NAME (admin): its ref records and mirror go, and clones of it then fail with exit 3.
Its artifacts stay on the server's disk, unreferenced.
`,
  'set-url': `Usage: snapclone set-url NAME URL [--no-wait] [--quiet] [--json] [--server URL]

Point NAME at a new upstream URL (admin). The server checks that the URL is reachable, re-points the
mirror and builds the default branch; without --no-wait, returns when that build is done.
`,
  clone: `Usage: snapclone clone NAME [DIR] [-b|--branch B] [--depth 1] [--mode editable|files] [--timeout SECONDS] [--proxy] [-q|--quiet] [--json] [--bench] [--server URL]

Clone NAME into DIR (default: NAME's last path segment without .git, as git names it). As with git
clone, DIR must not exist or be an empty directory, which is then filled in place (a mount point,
'.', a symlink to an empty directory); a failed clone leaves it as it was. A NAME whose default DIR
would be .git (".git.git") needs an explicit DIR. A failed, interrupted (SIGINT, SIGTERM, SIGHUP:
exit 128 + the signal) or closed-output (exit 141) clone removes what it wrote.
The clone gets the newest commit the server has built for what it needs. When the server is still
building a newer one, one line on stderr says so, even with --quiet:
  snapclone: cloned <ref> at <commit>; the server is still building <newer commit>
and --json reports it as "newer": {"commit", "job"} (null when nothing newer is building). When
nothing was built yet, the clone waits for the server's build, showing its phase on stderr.
When the server hands out object-store URLs, artifacts come straight from the object store (no
token sent there); one that fails there (refused, expired, unreachable) comes from the server.
Every byte is verified against the manifest's digests either way.
A download that breaks off (connection reset or cut, server restarted, a body silent for the stall
limit) is tried again, giving up after 5 attempts in a row without progress (20 in all), pausing 0.2 s, 0.4 s... (at most 3.2 s),
and resumes with a byte range from what was received; wrong bytes are never retried (exit 6).
Limits: connect 10 s, first byte of a download 30 s, silence mid-body 30 s ($SNAPCLONE_CONNECT_TIMEOUT_MS,
$SNAPCLONE_FIRST_BYTE_TIMEOUT_MS, $SNAPCLONE_STALL_TIMEOUT_MS, in ms). Under Bun (bin/snapclone) fetch cannot
tell connecting from waiting: a host's first request gets both limits in turn, later ones the first-byte limit. A 429 (rate limited) is waited
out per its Retry-After (at most 30 s each, within --timeout), 5 times at most; then exit 15.
Private repositories: on a 401 naming the upstream, the clone presents your own credential for it
in the Snapclone-Upstream-Authorization header: $SNAPCLONE_UPSTREAM_TOKEN as a bearer token, else
what \`git credential fill\` gives for the upstream (your helpers, or a prompt on a terminal; never a
prompt without one), only for an https upstream and a snapclone server reached over https (or
loopback): the server names the host, so git's credentials never travel in clear. It is kept in
memory only: never logged, never written to the clone. Refused: exit 10 (and git's helpers are
told to reject it).
  -b, --branch B check out branch B, or tag B (detached HEAD), like git clone --branch
  --depth 1      shallow clone of one commit, like git clone --depth 1
  --mode files   write only the work tree, no .git
  --timeout S    wait at most S seconds for a build (default 1800); then exit 11
  --proxy        download every artifact through the server, never from the object store
  -q, --quiet    print neither "Cloning into '<dir>'...", waiting lines nor progress on stderr
  --json         print one JSON result object on stdout
  --bench        print a per-phase timing breakdown on stderr
`,
};
