# Install haproxy.cfg.new (and maintenance.map.new, tls.pem.new when
# uploaded), then {{ action }}: start | reload | install (the running process
# already matches it, through the runtime API).
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
dir="$ROOT/etc/appgrid/haproxy"
state="$ROOT/var/lib/appgrid/haproxy"
sock="$ROOT/run/appgrid/haproxy.sock"
mkdir -p "$dir" "$state" "$ROOT/run/appgrid" "$ROOT/var/log/appgrid"
action={{ action }}
cli() { printf '%s\n' "$1" | socat -t 5 - "UNIX-CONNECT:$sock"; }
worker_pid() { cli 'show info' 2>/dev/null | sed -n 's/^Pid: //p'; }
has_worker() { [ -n "$(worker_pid)" ]; }
new_worker() { _p=$(worker_pid); [ -n "$_p" ] && [ "$_p" != "$old" ]; }
# The map and the certificate are read at (re)start: in place before the check.
for f in maintenance.map tls.pem; do
    if [ -f "$dir/$f.new" ]; then
        if [ -f "$dir/$f" ]; then cp -p "$dir/$f" "$dir/$f.old"; fi
        mv "$dir/$f.new" "$dir/$f"
    fi
done
{%- if not tls %}
rm -f "$dir/tls.pem" "$dir/tls.pem.old"
{%- endif %}
if ! haproxy -c -q -f "$dir/haproxy.cfg.new" >&2; then
    for f in maintenance.map tls.pem; do
        if [ -f "$dir/$f.old" ]; then mv "$dir/$f.old" "$dir/$f"; fi
    done
    echo "the new haproxy.cfg was rejected by haproxy -c" >&2
    exit 1
fi
rm -f "$dir/maintenance.map.old" "$dir/tls.pem.old"
if [ "$action" = start ] && svc_running haproxy; then action=reload; fi
if [ "$action" != start ] && ! svc_running haproxy; then action=start; fi
case "$action" in
start)
    mv "$dir/haproxy.cfg.new" "$dir/haproxy.cfg"
    # -W: master-worker in the foreground (the supervisor's way); USR2 reloads.
    svc_start haproxy root haproxy -W -f "$dir/haproxy.cfg"
    wait_for 10 "HAProxy's stats socket" has_worker
    ;;
reload)
    old=$(worker_pid)
    # Keep every server's state (drain, maint, up) across the reload.
    cli 'show servers state' > "$state/server-state.tmp"
    mv "$state/server-state.tmp" "$state/server-state"
    mv "$dir/haproxy.cfg.new" "$dir/haproxy.cfg"
    kill -USR2 "$(cat "$(svc_pidfile haproxy)")"
    wait_for 15 "HAProxy to reload" new_worker
    ;;
install)
    mv "$dir/haproxy.cfg.new" "$dir/haproxy.cfg"
    ;;
esac
echo "$action"
