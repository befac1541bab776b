# Every stanza in the repository, as pgBackRest's info JSON.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
{% include "postgres/env.sh" %}
{% include "backup/env.sh" %}
pgbr --output=json info
echo
pgbr info | awk '/^stanza: /{s=$2} /full backup: /{print s, $3}' | while read -r s l; do
    sum=$(pgbr --stanza="$s" repo-get "backup/$s/$l/backup.manifest" | sha256sum)
    echo "appgrid-checksum: $s $l ${sum%% *}"
done
