# Restore this machine's Postgres in place from one backup (or to a point in
# time), then promote: the server is stopped, its files replaced (--delta), and
# started again; archiving continues into the same stanza on a new timeline.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
{% include "postgres/env.sh" %}
{% include "backup/env.sh" %}
{% if pitr %}
# Everything written so far goes to the archive first (a WAL switch, waited
# for), so a point in time up to now can be reached.
if pg_ready; then
    pgbr --stanza="$BR_STANZA" --archive-timeout=600 check >&2
fi
{% endif %}
pg_stop
pgbr --stanza="$BR_STANZA" --delta {% for a in target_args %}{{ a }} {% endfor %}--target-action=promote restore >&2
svc_start postgres postgres "$PG_BIN/postgres" -D "$PG_DATA" -c "config_file=$PG_ETC/postgresql.conf"
pg_wait_ready 120
n=600
while [ "$(pg_psql -At -d postgres -c 'SELECT pg_is_in_recovery()')" != f ]; do
    n=$((n - 1))
    if [ $n -le 0 ]; then echo "postgres did not finish recovery within 120 s" >&2; exit 1; fi
    sleep 0.2
done
echo "appgrid-restored: ok"
