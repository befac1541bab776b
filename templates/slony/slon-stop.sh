# Stop this node's slon: its watchdog and the worker it forks (and any
# stray slon of this node, found by its mark); TERM, then KILL after 10 s.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
svc_stop {{ service }}
