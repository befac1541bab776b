# One query as the postgres superuser; rows unaligned, fields separated by |.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
{% include "postgres/env.sh" %}
pg_psql -A -t -F '|' -d {{ db }} -c {{ sql }}
