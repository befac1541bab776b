# Run a slonik script (fed on standard input) as postgres; passwords come from
# the node's 0600 .pgpass, never from the script.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
{% include "postgres/env.sh" %}
printf '%s\n' {{ script }} | as_user postgres env PGPASSFILE="$PG_PGPASS" {{ slonik }}
