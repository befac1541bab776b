# Does a database node answer? `select 1` through CONNINFO, from this machine,
# as the Slony-I user (its password is in this node's 0600 .pgpass); at most
# a few seconds. Exit status 0: it answers.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
{% include "postgres/env.sh" %}
as_user postgres env PGPASSFILE="$PG_PGPASS" PGCONNECT_TIMEOUT=5 \
    timeout 15 "$PG_BIN/psql" -X -q -A -t -d {{ conninfo }} -c 'select 1'
