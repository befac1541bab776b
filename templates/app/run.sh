# A one-off command on this web server (`appgrid run`): in the current
# release's directory, with the app's environment, as the app's user. Its exit
# status comes back on the last line; the script itself exits 0.
set -u
ROOT={{ root }}
{% include "lib/service.sh" %}
base="$ROOT/var/lib/appgrid/app"
envfile="$ROOT/etc/appgrid/app/env"
user=nobody
if id -u appgrid-app >/dev/null 2>&1; then user=appgrid-app; fi
if [ ! -d "$base/current/" ] || [ ! -f "$envfile" ]; then
    echo "no release runs on this machine yet: apply the manifest first" >&2
    echo "@@appgrid-exit=none"
    exit 0
fi
cd "$base/current/"
set -a
. "$envfile"
set +a
status=0
as_user "$user" {% for a in argv %}{{ a }} {% endfor %}</dev/null || status=$?
echo "@@appgrid-exit=$status"
