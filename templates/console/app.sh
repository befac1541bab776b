# A one-off command on this web server with the caller's terminal or pipes
# (`appgrid run`): in the current release's directory, with the app's
# environment, as the app's user. Its exit status is the command's; 125 when
# no release runs here.
set -u
ROOT={{ root }}
{% include "lib/service.sh" %}
base="$ROOT/var/lib/appgrid/app"
envfile="$ROOT/etc/appgrid/app/env"
user=nobody
if id -u appgrid-app >/dev/null 2>&1; then user=appgrid-app; fi
if [ ! -d "$base/current/" ] || [ ! -f "$envfile" ]; then
    echo "no release runs on this machine yet: apply the manifest first" >&2
    exit 125
fi
cd "$base/current/"
set -a
. "$envfile"
set +a
as_user "$user" {% for a in argv %}{{ a }} {% endfor %}
