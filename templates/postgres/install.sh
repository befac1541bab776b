# Ensure a Postgres server: initdb when absent, configuration in place,
# running, accepting connections. Prints `appgrid-changed: WHAT` for every change.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
{% include "postgres/env.sh" %}
pg_dirs
if [ ! -s "$PG_DATA/PG_VERSION" ]; then
    rm -rf "$PG_DATA"
    mkdir -p "$PG_DATA"
    chown postgres:postgres "$PG_DATA"
    chmod 0700 "$PG_DATA"
    as_user postgres "$PG_BIN/initdb" -D "$PG_DATA" -E UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=scram-sha-256 {% if not fsync %}--no-sync {% endif %}>/dev/null
    echo "appgrid-changed: initdb"
fi
conf_changed=
hba_changed=
if write_if_changed "$PG_ETC/postgresql.conf" 0644 {{ postgresql_conf }}; then
    conf_changed=1
    echo "appgrid-changed: postgresql.conf"
fi
if write_if_changed "$PG_ETC/pg_hba.conf" 0640 {{ pg_hba }}; then
    hba_changed=1
    echo "appgrid-changed: pg_hba.conf"
fi
pg_adopt
if svc_running postgres; then
    if [ -n "$conf_changed" ]; then
        pg_stop
        echo "appgrid-changed: restarted"
    elif [ -n "$hba_changed" ]; then
        kill -HUP "$(cat "$(svc_pidfile postgres)")"
        echo "appgrid-changed: reloaded"
    fi
fi
if ! svc_running postgres; then
    pg_start
    echo "appgrid-changed: started"
fi
pg_wait_ready 60
