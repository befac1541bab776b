# Dry probe of a migration: run the SQL file (put in place with mode 0600) as
# the postgres superuser inside a transaction that is rolled back, printing
# the tables and sequences it would create; delete the file whatever happens.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
{% include "postgres/env.sh" %}
SQL_FILE={{ sql_file }}
trap 'rm -f "$SQL_FILE"' EXIT
chown postgres:postgres "$SQL_FILE"
chmod 0600 "$SQL_FILE"
pg_psql -A -t -F '|' -d {{ db }} -f "$SQL_FILE"
