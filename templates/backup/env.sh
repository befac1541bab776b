# pgBackRest on one database machine (included by the backup scripts; needs
# ROOT and the postgres env). Writes its configuration; `pgbr ARGS…` runs
# pgBackRest as postgres with it.
BR_ETC="$ROOT/etc/appgrid/pgbackrest"
BR_CONF="$BR_ETC/pgbackrest.conf"
BR_STANZA={{ stanza }}
mkdir -p "$BR_ETC/conf.d" "$ROOT/var/log/appgrid/pgbackrest" "$ROOT/run/appgrid/pgbackrest" "$ROOT/var/spool/appgrid/pgbackrest"
chown postgres:postgres "$BR_ETC" "$BR_ETC/conf.d" "$ROOT/var/log/appgrid/pgbackrest" "$ROOT/run/appgrid/pgbackrest" "$ROOT/var/spool/appgrid/pgbackrest"
chmod 0750 "$BR_ETC" "$BR_ETC/conf.d"
write_if_changed "$BR_CONF" 0640 {{ conf }} || true
{% if directory_repo %}
# A directory repository: made here, owned by postgres, reachable by it.
if ! mkdir -p {{ repo_path }} 2>/dev/null; then
    echo "cannot create the backup directory "{{ repo_path }} >&2
    exit 3
fi
chown postgres:postgres {{ repo_path }}
chmod 0750 {{ repo_path }}
if ! as_user postgres test -w {{ repo_path }}; then
    echo "the postgres user cannot write to the backup directory "{{ repo_path }}" (is a parent directory closed to it?)" >&2
    exit 3
fi
{% endif %}
pgbr() {
    as_user postgres pgbackrest --config="$BR_CONF" --config-include-path="$BR_ETC/conf.d" "$@"
}
