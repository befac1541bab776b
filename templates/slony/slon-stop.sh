# Stop this node's slon daemon.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
svc_stop {{ service }}
