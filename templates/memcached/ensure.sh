# memcached on {{ addr }}:{{ port }} with {{ memory_mb }} MB, run by appgrid's
# supervisor as nobody. Idempotent: running with the same arguments → unchanged.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
conf="$ROOT/etc/appgrid/memcached"
mkdir -p "$conf" "$ROOT/var/lib/appgrid/memcached"
args={{ args }}
answers() {
    printf 'version\r\nquit\r\n' | socat -t 2 -T 3 - TCP:{{ addr }}:{{ port }} | grep -q '^VERSION'
}
if svc_running memcached && [ "$(cat "$conf/args" 2>/dev/null || true)" = "$args" ]; then
    echo unchanged
    exit 0
fi
svc_stop memcached
printf '%s\n' "$args" > "$conf/args"
# -U 0: no UDP (amplification); as root, svc_start drops to nobody itself.
svc_start memcached nobody memcached -l {{ addr }} -p {{ port }} -m {{ memory_mb }} -U 0
wait_for 10 "memcached to answer on "{{ addr }}:{{ port }} answers
echo started
