/** --help texts. Keep in step with README.md and the commands. */
export const HELP = `snapclone: clone git repositories from prebuilt clonepacks

Usage:
  snapclone serve  [--host 127.0.0.1] [--port 7420] [--data-dir DIR]
  snapclone add    <upstream-url> [--name NAME] [--no-wait]
  snapclone sync   NAME [--branch B] [--no-wait]
  snapclone status NAME [--json]
  snapclone clone  NAME [DIR] [--branch B] [--depth 1] [--mode editable|files] [--json] [--bench]
  snapclone --version | --help | help <command>

Client commands talk to --server URL, else $SNAPCLONE_SERVER, else http://127.0.0.1:7420.
Admin commands (add, sync) send $SNAPCLONE_TOKEN as a bearer token when it is set.
Exit status is 0 on success; otherwise a one-line reason is printed on stderr.
`;

export const COMMAND_HELP: Record<string, string> = {
  serve: `Usage: snapclone serve [--host 127.0.0.1] [--port 7420] [--data-dir DIR] [--build-concurrency 1]

Run the server in the foreground, logging to stderr. GET /healthz answers 200 once it is ready.
Data (bare mirrors, artifacts, SQLite metadata) lives in --data-dir, else $SNAPCLONE_DATA_DIR,
else ~/.local/share/snapclone. Listening beyond loopback needs $SNAPCLONE_ADMIN_TOKEN, which
add and sync must then present. One server per data dir (another exits 14). SIGINT, SIGTERM or
SIGHUP stop it once running builds end.
`,
  add: `Usage: snapclone add <upstream-url> [--name NAME] [--no-wait] [--server URL] [--json]

Register an upstream (https://, ssh://, git://, file://, user@host:path or a local path) and build it.
NAME defaults to the URL's last path segment. Without --no-wait, returns when every clone mode of the
default branch is ready. Adding the same name and URL again changes nothing.
`,
  sync: `Usage: snapclone sync NAME [--branch B] [--no-wait] [--server URL] [--json]

Fetch the upstream and build what changed: the default branch and every branch or tag built before,
or only B with --branch.
`,
  status: `Usage: snapclone status NAME [--json] [--server URL]

Show the upstream, built refs with commits and artifact sizes per clone mode, and recent builds.
`,
  clone: `Usage: snapclone clone NAME [DIR] [--branch B] [--depth 1] [--mode editable|files] [--json] [--bench] [--server URL]

Clone NAME into DIR (default: NAME's last path segment). DIR must not exist or be empty.
  --branch B     check out branch B, or tag B (detached HEAD), like git clone --branch
  --depth 1      shallow clone of one commit, like git clone --depth 1
  --mode files   write only the work tree, no .git
  --json         print one JSON result object on stdout
  --bench        print a per-phase timing breakdown on stderr
`,
};
