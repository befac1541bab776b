# What runs on this machine: is release {{ release_id }} unpacked, is the app
# running, and with which fingerprint.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
base="$ROOT/var/lib/appgrid/app"
if [ -d "$base/releases/"{{ release_id }} ]; then echo release=present; else echo release=absent; fi
if svc_running app; then echo running=yes; echo "pid=$(cat "$(svc_pidfile app)")"; else echo running=no; fi
echo "fingerprint=$(cat "$base/fingerprint" 2>/dev/null || true)"
echo "current=$(readlink "$base/current" 2>/dev/null || true)"
