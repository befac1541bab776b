#!/bin/sh
# Stop appgrid services on this machine and remove their files.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
{% for name in services %}svc_stop {{ name }}
{% endfor %}{% for dir in remove %}rm -rf -- "$ROOT"{{ dir }}
{% endfor %}
