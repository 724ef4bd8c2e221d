#!/bin/sh
# The part of the official postgres image's entrypoint that docker-compose.yml relies on: on an empty
# $PGDATA, a cluster whose superuser is $POSTGRES_USER (postgres) with the password in
# $POSTGRES_PASSWORD_FILE, the scripts in /docker-entrypoint-initdb.d run once against a server
# reachable by socket only, then the server on every interface with passwords (scram-sha-256).
set -eu
user=${POSTGRES_USER:-postgres}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb --username="$user" --pwfile="${POSTGRES_PASSWORD_FILE:?the stand-in needs POSTGRES_PASSWORD_FILE}" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 > /dev/null
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start > /dev/null
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "running $f"; if [ -x "$f" ]; then POSTGRES_USER=$user "$f"; else POSTGRES_USER=$user . "$f"; fi ;;
      *.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 --username "$user" --dbname postgres -f "$f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
  echo "PostgreSQL init process complete; ready for start up."
fi
[ $# -gt 0 ] || set -- postgres
[ "$1" = postgres ] && shift && exec postgres -c listen_addresses='*' "$@"
exec "$@"
