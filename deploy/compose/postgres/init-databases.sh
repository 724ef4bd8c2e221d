#!/bin/sh
# Run once by the postgres image, on its first start (an empty data volume), as the superuser: one
# role and one database for each application, from the database URL that application is given, so
# each password is written in one place only. Changing one later: ALTER ROLE ... PASSWORD, then the file.
set -eu

create() {   # create URL_FILE: postgres[ql][+driver]://USER:PASSWORD@HOST[:PORT]/DATABASE
  url=$(cat "$1")
  rest=${url#*://}
  userinfo=${rest%%@*}
  user=${userinfo%%:*}
  password=${userinfo#*:}
  database=${rest#*/}
  database=${database%%\?*}
  # Names as plain identifiers, the password with nothing to percent-decode (generate-secrets.sh
  # writes hex): what is read here is then exactly what the application sends.
  echo "$user" | grep -Eqx '[a-z_][a-z0-9_]{0,62}' || { echo "init-databases: $1: the user name must be lowercase letters, digits, _" >&2; exit 1; }
  echo "$database" | grep -Eqx '[a-z_][a-z0-9_]{0,62}' || { echo "init-databases: $1: the database name must be lowercase letters, digits, _" >&2; exit 1; }
  echo "$password" | grep -Eqx '[A-Za-z0-9._~-]{16,}' || { echo "init-databases: $1: the password must be 16 or more of A-Z a-z 0-9 . _ ~ - (e.g. hex)" >&2; exit 1; }
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v user="$user" -v password="$password" -v database="$database" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'password';
CREATE DATABASE :"database" OWNER :"user";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
SQL
  echo "init-databases: database $database for $user"
}

create /run/secrets/timetracker_database_url
create /run/secrets/authgate_database_url
