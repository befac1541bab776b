# Release {{ release_id }}: unpack (and build) it if new, switch `current`,
# restart the app and wait for {{ health_path }} to answer 200. When it does
# not (the health check fails until the bound, or the app exits), the
# previous release comes back: its `current`, env file, start wrapper and
# fingerprint, restarted and health-checked in turn.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
base="$ROOT/var/lib/appgrid/app"
id={{ release_id }}
rel="$base/releases/$id"
archive="$base/incoming/$id.tar"
envfile="$ROOT/etc/appgrid/app/env"
wrapper="$ROOT/etc/appgrid/app/start.sh"
build={{ build }}
user=nobody
if id -u appgrid-app >/dev/null 2>&1; then user=appgrid-app; fi
mkdir -p "$base/releases"
if [ ! -d "$rel" ]; then
    rm -rf "$rel.tmp"
    mkdir -p "$rel.tmp"
    tar -xf "$archive" -C "$rel.tmp" --no-same-owner
    if [ -n "$build" ]; then
        if [ "$(id -u)" = 0 ]; then chown -R "$user" "$rel.tmp"; fi
        (cd "$rel.tmp" && set -a && . "$envfile.next" && set +a && as_user "$user" /bin/sh -c "$build") >&2
    fi
    mv "$rel.tmp" "$rel"
fi
rm -f "$archive"
# The release phase: once per release, on one server, before any switches.
release_command={{ release_command }}
if [ -n "$release_command" ]; then
    rclog="$base/release-command.log"
    status=0
    (cd "$rel" && set -a && . "$envfile.next" && set +a && as_user "$user" /bin/sh -c "$release_command") >"$rclog" 2>&1 || status=$?
    if [ "$status" != 0 ]; then
        echo "result=release_command_failed"
        echo "status=$status"
        tail -n 20 "$rclog" | sed 's/^/log|/'
        exit 0
    fi
fi

# What runs now, kept to come back to.
prev=$(readlink "$base/current" 2>/dev/null || true)
if [ -n "$prev" ] && [ -d "$base/$prev" ] && [ -f "$envfile" ] && [ -f "$wrapper" ]; then
    cp -p "$envfile" "$envfile.prev"
    cp -p "$wrapper" "$wrapper.prev"
    cp -p "$base/fingerprint" "$base/fingerprint.prev" 2>/dev/null || : > "$base/fingerprint.prev"
else
    prev=
fi

switch_to() { # target env wrapper fingerprint
    ln -sfn "$1" "$base/current.new"
    mv -T "$base/current.new" "$base/current"
    svc_stop app
    mv -f "$2" "$envfile"
    mv -f "$3" "$wrapper"
    printf '%s\n' "$4" > "$base/fingerprint"
    svc_start app root "$wrapper"
}
health_line=
health_body=
healthy() {
    answer=$(printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' {{ health_path }} {{ addr }} |
        socat -t 2 -T 3 - TCP:{{ addr }}:{{ port }} 2>/dev/null | head -c 2048 | tr -d '\r' || true)
    health_line=$(printf '%s\n' "$answer" | head -n 1)
    health_body=$(printf '%s\n' "$answer" | sed '1,/^$/d' | tr '\n' ' ' | cut -c 1-200)
    case "$health_line" in
    "HTTP/1."[01]" 200"*) return 0 ;;
    esac
    return 1
}
wait_healthy() { # polls; sets `waited`
    n=$1
    waited=healthy
    while ! healthy; do
        if ! svc_running app; then waited=died; return; fi
        n=$((n - 1))
        if [ "$n" -le 0 ]; then waited=timeout; return; fi
        sleep 0.1
    done
}

switch_to "releases/$id" "$envfile.next" "$wrapper.next" {{ fingerprint }}
wait_healthy {{ polls }}
result=$waited
health="$health_line $health_body"
rollback=none
if [ "$result" != healthy ] && [ -n "$prev" ]; then
    switch_to "$prev" "$envfile.prev" "$wrapper.prev" "$(cat "$base/fingerprint.prev")"
    wait_healthy {{ polls }}
    rollback=$waited
fi
# Keep the current release, the one before it and the three newest others.
ls -1t "$base/releases" | grep -v -e "^$id$" -e "^${prev#releases/}\$" -e '\.tmp$' | tail -n +4 |
    while read -r old; do rm -rf "$base/releases/$old"; done
echo "pid=$(cat "$(svc_pidfile app)" 2>/dev/null || true)"
echo "result=$result"
echo "health=$health"
echo "previous=${prev#releases/}"
echo "rollback=$rollback"
