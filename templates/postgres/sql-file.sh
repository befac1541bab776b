# Run a SQL file that was put in place with mode 0600 (it may hold a secret),
# as the postgres superuser, and delete it whatever happens.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
{% include "postgres/env.sh" %}
SQL_FILE={{ sql_file }}
trap 'rm -f "$SQL_FILE"' EXIT
chown postgres:postgres "$SQL_FILE"
chmod 0600 "$SQL_FILE"
pg_psql -d {{ db }} -f "$SQL_FILE"
