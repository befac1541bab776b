# Stop this node's Postgres (fast shutdown).
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
{% include "postgres/env.sh" %}
pg_stop
