# Stop the autoscaler on this machine and remove it; nothing when it is not here.
set -eu
ROOT={{ root }}
DIR={{ dir }}
{% include "lib/service.sh" %}
if [ ! -d "$DIR" ]; then echo absent; fi
if command -v systemctl >/dev/null 2>&1 && [ -f /etc/systemd/system/{{ unit }} ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo -n"; fi
    $SUDO systemctl disable --now {{ timer }} 2>/dev/null || true
    $SUDO systemctl disable --now {{ unit }} 2>/dev/null || true
    $SUDO rm -f -- /etc/systemd/system/{{ unit }} /etc/systemd/system/{{ timer }}
    $SUDO systemctl daemon-reload
fi
# The supervisor's runner: TERM (its pass in flight ends), KILL after 30 s.
svc_stop {{ service }} TERM 300
# What the runner kept beside state that this side needs back (the hosts registry).
if [ -f "$DIR/app/.appgrid/"{{ app }}/hosts.json ]; then
    echo "--- registry"
    cat "$DIR/app/.appgrid/"{{ app }}/hosts.json
fi
rm -rf -- "$DIR"
