# Release {{ release_id }}: unpack (and build) it if new, switch `current`,
# restart the app and wait for {{ health_path }} to answer 200.
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
        (cd "$rel.tmp" && set -a && . "$envfile" && set +a && as_user "$user" /bin/sh -c "$build") >&2
    fi
    mv "$rel.tmp" "$rel"
fi
rm -f "$archive"
ln -sfn "releases/$id" "$base/current.new"
mv -T "$base/current.new" "$base/current"
svc_stop app
printf '%s\n' {{ fingerprint }} > "$base/fingerprint"
svc_start app root "$wrapper"
healthy() {
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' {{ health_path }} {{ addr }} |
        socat -t 2 -T 3 - TCP:{{ addr }}:{{ port }} 2>/dev/null | head -n 1 | grep -q '^HTTP/1\.[01] 200'
}
n={{ polls }}
result=healthy
while ! healthy; do
    if ! svc_running app; then result=died; break; fi
    n=$((n - 1))
    if [ "$n" -le 0 ]; then result=timeout; break; fi
    sleep 0.1
done
# Keep the current release and the three newest others.
ls -1t "$base/releases" | grep -v -e "^$id$" -e '\.tmp$' | tail -n +4 | while read -r old; do
    rm -rf "$base/releases/$old"
done
echo "pid=$(cat "$(svc_pidfile app)" 2>/dev/null || true)"
echo "result=$result"
