# appgrid's portable service supervisor: a shell library included by role
# scripts with tera's `include "lib/service.sh"` tag. It needs ROOT set (the machine's
# root prefix: "" on a real host, a directory for the local provider).
# Services are daemons with a pid file under $ROOT/run/appgrid and a log under
# $ROOT/var/log/appgrid.
#
# Invariants:
# - Starting and stopping a service hold its lock ($ROOT/run/appgrid/NAME.lock,
#   flock): two starts at once start one daemon; a start never races a stop.
# - Every process of a service carries APPGRID_ROOT=$ROOT and
#   APPGRID_SERVICE=NAME in its environment (inherited by what it forks), and
#   the daemon leads its own session, whose id is in the pid file. Stopping
#   finds the service by both, so a lost or overwritten pid file leaves
#   nothing running. Processes of other network namespaces (other hosts on
#   one kernel: containers, the test farm) are never this machine's.

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

# svc_lock NAME / svc_unlock: hold NAME's lock on descriptor 9 (one at a time).
svc_lock() {
    mkdir -p "$ROOT/run/appgrid" "$ROOT/var/log/appgrid"
    exec 9>"$ROOT/run/appgrid/$1.lock"
    flock 9
}
svc_unlock() {
    flock -u 9
    exec 9>&-
}

# svc_marked [NAME]: pids whose environment marks them as this machine's
# (and, given NAME, as that service's). Only processes in this script's
# network namespace count: hosts that share a kernel's process table but not
# their network (containers, the test farm's hosts) are other machines.
svc_marked() {
    _root_files=$(grep -s -l -z -x -F "APPGRID_ROOT=$ROOT" /proc/[0-9]*/environ || true)
    [ -n "$_root_files" ] || return 0
    if [ -n "${1:-}" ]; then
        # shellcheck disable=SC2086
        _root_files=$(grep -s -l -z -x -F "APPGRID_SERVICE=$1" $_root_files || true)
    fi
    for _f in $_root_files; do
        _p=${_f#/proc/}
        _p=${_p%/environ}
        if [ "$_p" != "$$" ] && [ "/proc/$_p/ns/net" -ef "/proc/$$/ns/net" ]; then echo "$_p"; fi
    done
}

# svc_session: live pids of session $SVC_SID, zombies left out (one pass over
# /proc/*/stat: after the command's closing parenthesis come state, ppid,
# pgrp, session).
svc_session() {
    for _p in $(cat /proc/[0-9]*/stat 2>/dev/null |
        sed -n "s/^\([0-9]*\) .*) [^Z] [0-9]* [0-9]* $SVC_SID .*/\1/p"); do
        if [ "/proc/$_p/ns/net" -ef "/proc/$$/ns/net" ]; then echo "$_p"; fi
    done
}

# svc_pids NAME: every live process of service NAME: the session its pid
# file names (svc_start's daemon leads one; daemons started before the mark
# existed are found this way too) and every process marked as NAME here.
svc_pids() {
    _pf=$(svc_pidfile "$1")
    {
        if [ -s "$_pf" ]; then
            SVC_SID=$(cat "$_pf")
            case "$SVC_SID" in '' | *[!0-9]*) ;; *) svc_session ;; esac
        fi
        svc_marked "$1"
    } | sort -un
}

# svc_describe PIDS…: "PID (command)" for each live one.
svc_describe() {
    for _p in "$@"; do
        _c=$(tr '\0' ' ' 2>/dev/null < "/proc/$_p/cmdline" | cut -c1-60) || continue
        if [ -n "$_c" ]; then printf '%s (%s) ' "$_p" "${_c% }"; fi
    done
}

# svc_roots PIDS…: those whose parent is not among PIDS (the tops of their trees).
svc_roots() {
    for _p in "$@"; do
        read -r _line 2>/dev/null < "/proc/$_p/stat" || continue
        # shellcheck disable=SC2086
        set -- ${_line##*) }
        _pp=$2
        case " $SVC_SET " in *" $_pp "*) ;; *) echo "$_p" ;; esac
    done
}

# svc_alive PIDS…: true while any of them lives (a zombie, which kill -0
# still finds until its parent reaps it, does not).
svc_alive() {
    for _p in "$@"; do
        read -r _line 2>/dev/null < "/proc/$_p/stat" || continue
        # shellcheck disable=SC2086
        set -- ${_line##*) }
        [ "$1" = Z ] || return 0
    done
    return 1
}

# svc_kill NAME SIGNAL TENTHS [roots]: SIGNAL every process of NAME (or, with
# `roots`, only the tops of its process trees, which stop their own children:
# Postgres), and again whatever appears meanwhile (a watchdog's new worker);
# after TENTHS × 0.1 s, KILL whatever is left. Reports on stderr what it
# stopped. Callers hold NAME's lock.
svc_kill() {
    _name=$1; _sig=$2; _tenths=$3; _mode=${4:-all}
    _seen=""
    _desc=""
    _forced=""
    _i=0
    _pids=$(svc_pids "$_name")
    while [ -n "$_pids" ]; do
        for _p in $_pids; do
            case " $_seen " in *" $_p "*) ;; *) _seen="$_seen $_p"; _desc="$_desc$(svc_describe "$_p")" ;; esac
        done
        if [ $_i -ge "$_tenths" ]; then
            # shellcheck disable=SC2086
            kill -KILL $_pids 2>/dev/null || true
            _forced="$_forced $_pids"
            if [ $_i -ge $((_tenths + 50)) ]; then
                # shellcheck disable=SC2086
                echo "could not stop $_name: still running: $(svc_describe $_pids)" >&2
                return 1
            fi
        else
            _targets=$_pids
            if [ "$_mode" = roots ]; then
                # shellcheck disable=SC2086
                SVC_SET=$(echo $_pids)
                # shellcheck disable=SC2086
                _targets=$(svc_roots $_pids)
            fi
            # shellcheck disable=SC2086
            kill "-$_sig" $_targets 2>/dev/null || true
        fi
        # Wait (cheaply) for these to end, up to a second, then look again.
        _j=0
        # shellcheck disable=SC2086
        while [ $_j -lt 10 ] && [ $_i -lt $((_tenths + 50)) ] && svc_alive $_pids; do
            sleep 0.1
            _j=$((_j + 1))
            _i=$((_i + 1))
        done
        _i=$((_i + 1))
        _pids=$(svc_pids "$_name")
    done
    if [ -n "$_seen" ]; then
        echo "stopped $_name: ${_desc% }${_forced:+ (killed after $((_tenths / 10)) s:$_forced)}" >&2
    fi
}

# svc_start NAME USER CMD...: start CMD (which must stay in the foreground)
# as USER in its own session, marked, recording its pid; nothing when it runs.
# Strays of NAME (running without a pid file) are stopped first.
svc_start() {
    _name=$1; _user=$2; shift 2
    svc_lock "$_name"
    if svc_running "$_name"; then svc_unlock; return 0; fi
    svc_kill "$_name" TERM 100
    _log=$(svc_log "$_name")
    touch "$_log"
    if [ "$(id -u)" = 0 ] && [ "$_user" != root ]; then chown "$_user" "$_log"; fi
    # setsid: the service outlives this script and its session; as_user execs
    # in place. Descriptor 9 (the lock) is not passed on.
    APPGRID_ROOT="$ROOT" APPGRID_SERVICE="$_name" \
        setsid sh -c 'as_user() { _u=$1; shift; if [ "$(id -u)" = 0 ] && [ "$_u" != root ]; then exec setpriv --reuid="$_u" --regid="$(id -g "$_u")" --init-groups -- "$@"; else exec "$@"; fi; }; as_user "$@"' svc "$_user" "$@" </dev/null >>"$_log" 2>&1 9>&- &
    echo $! > "$(svc_pidfile "$_name")"
    svc_unlock
}

# svc_stop NAME [SIGNAL [TENTHS [roots]]]: SIGNAL (TERM) every process of NAME
# (see svc_kill), wait up to TENTHS × 0.1 s (100), then KILL; the pid file goes.
svc_stop() {
    svc_lock "$1"
    svc_kill "$1" "${2:-TERM}" "${3:-100}" "${4:-all}" || { svc_unlock; return 1; }
    rm -f "$(svc_pidfile "$1")"
    svc_unlock
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
