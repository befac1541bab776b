# Stop the app.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
svc_stop app
