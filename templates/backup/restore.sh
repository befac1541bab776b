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
# A postmaster the supervisor had to KILL (its archiver still busy) leaves its
# pid file behind; the data directory is replaced below anyway. Killed, it may
# linger a moment as a zombie its new parent has not reaped: dead all the same.
if [ -f "$PG_DATA/postmaster.pid" ]; then
    _pm=$(head -n 1 "$PG_DATA/postmaster.pid")
    case "$_pm" in '' | *[!0-9]*) _pm= ;; esac
    _n=100
    while [ -n "$_pm" ] && [ $_n -gt 0 ] && svc_alive "$_pm"; do sleep 0.1; _n=$((_n - 1)); done
    if [ -z "$_pm" ] || ! svc_alive "$_pm"; then
        rm -f "$PG_DATA/postmaster.pid"
        # Its socket's lock file too: postgres takes a zombie's pid for a live
        # postmaster and would refuse to start.
        _sl="$PG_SOCK/.s.PGSQL.$PG_PORT.lock"
        if [ -f "$_sl" ] && [ "$(head -n 1 "$_sl")" = "$_pm" ]; then rm -f "$_sl"; fi
    fi
fi
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
