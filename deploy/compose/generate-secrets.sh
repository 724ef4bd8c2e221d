#!/bin/sh
# Makes the secret files docker-compose.yml reads, in secrets/ beside this script (or in $1): random
# values, never printed. A file that exists is kept, so running it again changes nothing.
# DB_HOST (default db:5432, the Compose service) is the PostgreSQL server the two database URLs name:
#   DB_HOST=postgres.example.internal:5432 deploy/compose/generate-secrets.sh deploy/kubernetes/secrets
#
# Mode 0444 in a 0700 directory: the containers' users are not root and not the same (authgate and
# TimeTracker run as uid 1000, PostgreSQL as its own user), and the host's other users cannot enter
# the directory. Hex everywhere: no character needs escaping in a database URL.
set -eu
db=${DB_HOST:-db:5432}
dir=${1:-$(dirname "$0")/secrets}
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"

hex() { od -An -vN"$1" -tx1 /dev/urandom | tr -d ' \n'; }
make() {
  if [ -e "$dir/$1" ]; then echo "kept    $dir/$1"; return; fi
  printf '%s\n' "$2" > "$dir/$1"
  chmod 0444 "$dir/$1"
  echo "created $dir/$1"
}

make authgate_secret_key "$(hex 32)"
make header_signing_secret "$(hex 32)"
make authgate_database_url "postgres://authgate:$(hex 24)@$db/authgate"
make timetracker_secret_key "$(hex 32)"
make timetracker_database_url "postgresql+psycopg2://timetracker:$(hex 24)@$db/timetracker"
make postgres_password "$(hex 24)"
# Only docker-compose.demo-idp.yml uses it: the client secret the demo identity provider and authgate share.
make demo_oidc_client_secret "$(hex 24)"
