# The last lines of the app's log.
set -eu
tail -n {{ lines }} {{ root }}/var/log/appgrid/app.log 2>/dev/null || true
