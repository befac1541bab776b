# Where the autoscaler stands on this machine: one `KEY VALUE` line each.
set -eu
ROOT={{ root }}
DIR={{ dir }}
{% include "lib/service.sh" %}
printf 'installed %s\n' "$(cat "$DIR/installed.json" 2>/dev/null | tr -d '\n' || true)"
printf 'heartbeat %s\n' "$(cat "$DIR/heartbeat.json" 2>/dev/null | tr -d '\n' || true)"
if command -v systemctl >/dev/null 2>&1 && [ -f /etc/systemd/system/{{ unit }} ]; then
    printf 'pids %s\n' "$(systemctl show -p MainPID --value {{ unit }} 2>/dev/null || true)"
    if [ -f /etc/systemd/system/{{ timer }} ]; then
        printf 'unit %s %s\n' {{ timer }} "$(systemctl is-active {{ timer }} 2>/dev/null || true)"
    else
        printf 'unit %s %s\n' {{ unit }} "$(systemctl is-active {{ unit }} 2>/dev/null || true)"
    fi
else
    printf 'pids %s\n' "$(svc_pids {{ service }} | tr '\n' ' ')"
fi
