# appgrid's portable service supervisor: a shell library included by role
# scripts (a tera `include` of "lib/service.sh"). It needs ROOT set (the machine's
# root prefix: "" on a real host, a directory for the local provider).
# Services are daemons with a pid file under $ROOT/run/appgrid and a log under
# $ROOT/var/log/appgrid; starting a running service does nothing.

svc_pidfile() { printf '%s/run/appgrid/%s.pid' "$ROOT" "$1"; }
svc_log() { printf '%s/var/log/appgrid/%s.log' "$ROOT" "$1"; }

# svc_running NAME: true when NAME's recorded pid is alive.
svc_running() {
    _pf=$(svc_pidfile "$1")
    [ -s "$_pf" ] && kill -0 "$(cat "$_pf")" 2>/dev/null
}

# as_user USER CMD...: run CMD as USER when we are root, as ourselves otherwise.
as_user() {
    _u=$1; shift
    if [ "$(id -u)" = 0 ] && [ "$_u" != root ]; then
        setpriv --reuid="$_u" --regid="$(id -g "$_u")" --init-groups -- "$@"
    else
        "$@"
    fi
}

# svc_start NAME USER CMD...: start CMD (which must stay in the foreground)
# as USER in its own session, recording its pid.
svc_start() {
    _name=$1; _user=$2; shift 2
    mkdir -p "$ROOT/run/appgrid" "$ROOT/var/log/appgrid"
    if svc_running "$_name"; then return 0; fi
    _log=$(svc_log "$_name")
    touch "$_log"
    if [ "$(id -u)" = 0 ] && [ "$_user" != root ]; then chown "$_user" "$_log"; fi
    # setsid: the service outlives this script and its session; as_user execs in place.
    setsid sh -c 'as_user() { _u=$1; shift; if [ "$(id -u)" = 0 ] && [ "$_u" != root ]; then exec setpriv --reuid="$_u" --regid="$(id -g "$_u")" --init-groups -- "$@"; else exec "$@"; fi; }; as_user "$@"' svc "$_user" "$@" </dev/null >>"$_log" 2>&1 &
    echo $! > "$(svc_pidfile "$_name")"
}

# svc_stop NAME: TERM, wait up to 10 s, then KILL.
svc_stop() {
    _pf=$(svc_pidfile "$1")
    [ -s "$_pf" ] || return 0
    _pid=$(cat "$_pf")
    kill -TERM "$_pid" 2>/dev/null || { rm -f "$_pf"; return 0; }
    _i=0
    while kill -0 "$_pid" 2>/dev/null && [ $_i -lt 100 ]; do sleep 0.1; _i=$((_i + 1)); done
    kill -KILL "$_pid" 2>/dev/null || true
    rm -f "$_pf"
}

# wait_for TIMEOUT_S DESCRIPTION CMD...: retry CMD every 0.2 s until it succeeds.
wait_for() {
    _t=$1; _what=$2; shift 2
    _n=$((_t * 5))
    while ! "$@" >/dev/null 2>&1; do
        _n=$((_n - 1))
        if [ $_n -le 0 ]; then echo "timed out after ${_t}s waiting for $_what" >&2; return 1; fi
        sleep 0.2
    done
}
