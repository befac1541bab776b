# Everything the origin wrote so far goes to the archive (a WAL switch, waited
# for), so a restore onto another machine can replay up to now.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
{% include "postgres/env.sh" %}
{% include "backup/env.sh" %}
pgbr --stanza="$BR_STANZA" --archive-timeout=600 check >&2
echo "appgrid-archived: ok"
