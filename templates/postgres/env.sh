# Postgres paths on one machine (included by the postgres and slony scripts;
# needs ROOT). Layout contract: data under var/lib, sockets under run,
# configuration and the 0600 .pgpass under etc, logs under var/log.
PG_BIN={{ pg_bin }}
PG_PORT={{ port }}
PG_DATA="$ROOT/var/lib/appgrid/postgres"
PG_ETC="$ROOT/etc/appgrid/postgres"
PG_SOCK="$ROOT/run/appgrid/postgres"
PG_PGPASS="$PG_ETC/.pgpass"

# pg_dirs: the directories postgres needs, owned by it.
pg_dirs() {
    mkdir -p "$ROOT/var/lib/appgrid" "$PG_ETC" "$PG_SOCK" "$ROOT/run/appgrid" "$ROOT/var/log/appgrid"
    chown postgres:postgres "$PG_SOCK" "$PG_ETC"
    chmod 0750 "$PG_ETC"
}

# pg_psql ARGS...: psql as the postgres superuser over this node's socket.
pg_psql() {
    as_user postgres "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" "$@"
}

# pg_ready: the server answers on its socket.
pg_ready() {
    as_user postgres "$PG_BIN/pg_isready" -q -h "$PG_SOCK" -p "$PG_PORT"
}

# pg_wait_ready SECONDS: wait until the server accepts connections; if the
# postmaster died, show the end of its log.
pg_wait_ready() {
    _n=$(($1 * 10))
    _again=5
    while ! pg_ready; do
        # Ours may have exited because a postmaster an interrupted run started
        # holds the directory: that one is adopted and waited for, or, if it
        # was on its way out (stopped as a stray), ours is started again.
        if ! svc_running postgres; then pg_adopt; fi
        if ! svc_running postgres && [ $_again -gt 0 ] &&
            tail -n 5 "$(svc_log postgres)" 2>/dev/null | grep -q 'lock file "postmaster.pid" already exists'; then
            _again=$((_again - 1))
            sleep 1
            pg_adopt
            if ! svc_running postgres; then
                echo "a postmaster of an interrupted run held the data directory: starting again" >&2
                pg_start
            fi
            continue
        fi
        if ! svc_running postgres; then
            echo "postgres exited; the end of its log:" >&2
            tail -n 20 "$(svc_log postgres)" >&2 || true
            return 1
        fi
        _n=$((_n - 1))
        if [ $_n -le 0 ]; then
            echo "timed out after $1 s waiting for postgres; the end of its log:" >&2
            tail -n 20 "$(svc_log postgres)" >&2 || true
            return 1
        fi
        sleep 0.1
    done
}

# pg_start: start this node's postmaster (nothing when it runs).
pg_start() {
    svc_start postgres postgres "$PG_BIN/postgres" -D "$PG_DATA" -c "config_file=$PG_ETC/postgresql.conf"
}

# pg_adopt: record a live postmaster of this data directory that nothing
# records (its start was cut off before the pid file was written: an apply
# killed at that moment), so it is waited for, not started twice. The mark
# svc_start leaves cannot find it: postgres writes its process title over
# its environment.
pg_adopt() {
    svc_lock postgres
    if ! svc_running postgres && [ -s "$PG_DATA/postmaster.pid" ]; then
        _pm=$(head -n 1 "$PG_DATA/postmaster.pid")
        case "$_pm" in
            '' | *[!0-9]*) ;;
            *)
                if kill -0 "$_pm" 2>/dev/null &&
                    [ "$(readlink -f "/proc/$_pm/cwd")" = "$(readlink -f "$PG_DATA")" ]; then
                    echo "$_pm" > "$(svc_pidfile postgres)"
                    echo "adopted postgres $_pm: it was running, its start not recorded" >&2
                fi
                ;;
        esac
    fi
    svc_unlock
}

# pg_stop: fast shutdown (SIGINT to the postmaster: disconnect clients,
# checkpoint), then KILL whatever of it is left after 30 s.
pg_stop() {
    svc_stop postgres INT 300 roots
}

# write_if_changed FILE MODE CONTENT: replace FILE when CONTENT differs; true when replaced.
write_if_changed() {
    if [ -f "$1" ] && printf '%s\n' "$3" | cmp -s - "$1"; then return 1; fi
    printf '%s\n' "$3" > "$1.appgrid-tmp"
    chmod "$2" "$1.appgrid-tmp"
    chown postgres:postgres "$1.appgrid-tmp"
    mv -f "$1.appgrid-tmp" "$1"
}
