# The end of this node's slon log (for errors).
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
tail -n {{ lines }} "$(svc_log {{ service }})" 2>/dev/null || true
