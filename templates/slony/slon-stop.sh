# Stop this node's slon: its watchdog and the worker it forked share the
# process group svc_start's setsid made, so signal the whole group (TERM, then
# KILL after 10 s); signalling the watchdog alone leaves the worker running.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
_pf=$(svc_pidfile {{ service }})
[ -s "$_pf" ] || exit 0
_pid=$(cat "$_pf")
kill -TERM "-$_pid" 2>/dev/null || { rm -f "$_pf"; exit 0; }
_i=0
while kill -0 "-$_pid" 2>/dev/null && [ $_i -lt 100 ]; do sleep 0.1; _i=$((_i + 1)); done
kill -KILL "-$_pid" 2>/dev/null || true
rm -f "$_pf"
