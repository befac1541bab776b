# Ensure this node's slon daemon runs (one per node, origin included).
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
{% include "postgres/env.sh" %}
if svc_running {{ service }}; then exit 0; fi
svc_start {{ service }} postgres env PGPASSFILE="$PG_PGPASS" {{ slon }} -s 200 -t 2000 {{ cluster }} {{ conninfo }}
sleep 0.3
if ! svc_running {{ service }}; then
    echo "slon exited at once; the end of its log:" >&2
    tail -n 20 "$(svc_log {{ service }})" >&2 || true
    exit 1
fi
echo "appgrid-changed: slon started"
