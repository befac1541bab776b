# A full backup of this machine's Postgres with pgBackRest. The first one
# turns WAL archiving on (ALTER SYSTEM, so postgresql.conf stays appgrid's)
# and restarts Postgres once. Prints the stanza's info as JSON, then
# `appgrid-checksum: STANZA LABEL SHA256` of the new backup's manifest.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
{% include "postgres/env.sh" %}
{% include "backup/env.sh" %}
# The repository first: an unreachable or missing target fails here, before
# anything on the server changes.
pgbr --stanza="$BR_STANZA" stanza-create >&2
want_cmd={{ archive_command }}
mode=$(pg_psql -At -d postgres -c 'SHOW archive_mode')
cmd=$(pg_psql -At -d postgres -c 'SHOW archive_command')
if [ "$mode" != on ] || [ "$cmd" != "$want_cmd" ]; then
    pg_psql -d postgres -c {{ alter_mode }} >/dev/null
    pg_psql -d postgres -c {{ alter_command }} >/dev/null
    if [ "$mode" != on ]; then
        echo "turning WAL archiving on: restarting postgres" >&2
        pg_stop
        svc_start postgres postgres "$PG_BIN/postgres" -D "$PG_DATA" -c "config_file=$PG_ETC/postgresql.conf"
        pg_wait_ready 60
    else
        pg_psql -d postgres -c 'SELECT pg_reload_conf()' >/dev/null
    fi
fi
pgbr --stanza="$BR_STANZA" --type=full {% for a in annotations %}--annotation={{ a }} {% endfor %}backup >&2
pgbr --stanza="$BR_STANZA" expire >&2 || true
pgbr --stanza="$BR_STANZA" --output=json info
echo
label=$(pgbr --stanza="$BR_STANZA" info | sed -n 's/^ *full backup: //p' | tail -n 1)
sum=$(pgbr --stanza="$BR_STANZA" repo-get "backup/$BR_STANZA/$label/backup.manifest" | sha256sum)
echo "appgrid-checksum: $BR_STANZA $label ${sum%% *}"
