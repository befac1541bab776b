# Copy the app schema from the origin to this (new) node: pg_dump --schema-only
# over the network as the Slony-I user, without Slony-I's own triggers (and
# without CREATE SCHEMA when the schema exists here, as `public` does).
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
{% include "postgres/env.sh" %}
TMP=$(mktemp -d "$ROOT/var/lib/appgrid/schema-copy.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
chown postgres:postgres "$TMP"
as_user postgres env PGPASSFILE="$PG_PGPASS" "$PG_BIN/pg_dump" --schema-only -Fc \
    -h {{ origin_addr }} -p {{ origin_port }} -U {{ slony_user }} -n {{ schema }} -f "$TMP/schema.dump" {{ db }}
as_user postgres "$PG_BIN/pg_restore" -l "$TMP/schema.dump" \
    | awk -v p={{ trigger_prefix }} -v s={{ schema }} -v keep_schema={{ create_schema }} \
        '!($4 == "TRIGGER" && index($7, p) == 1) && !($4 == "SCHEMA" && $6 == s && keep_schema != "yes")' \
        > "$TMP/schema.list"
chown postgres:postgres "$TMP/schema.list"
as_user postgres "$PG_BIN/pg_restore" --exit-on-error -L "$TMP/schema.list" \
    -h "$PG_SOCK" -p "$PG_PORT" -d {{ db }} "$TMP/schema.dump"
echo "appgrid-changed: schema copied"
