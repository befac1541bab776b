# Put the autoscaler of an app in place on this machine and (re)start it.
# The binary, manifest and credentials are already uploaded into DIR.
set -eu
ROOT={{ root }}
DIR={{ dir }}
{% include "lib/service.sh" %}
cd "$DIR"
# The binary must be the one sent.
got=$(sha256sum -- {{ binary }} | cut -d' ' -f1)
if [ "$got" != {{ sha256 }} ]; then
    echo "the appgrid binary arrived damaged on this machine: sha256 $got, sent {{ sha256 }}" >&2
    rm -f -- {{ binary }}
    exit 1
fi
{% for t in archives %}rm -rf -- "$DIR/app/"{{ t }}
mkdir -p -- "$DIR/app/"{{ t }}
tar -xpf "$DIR/app/"{{ t }}.tar -C "$DIR/app/"{{ t }}
rm -f -- "$DIR/app/"{{ t }}.tar
{% endfor -%}
{% if supervisor == "systemd" %}
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo -n"; fi
{% for u in units %}$SUDO install -m 0644 -- "$DIR/"{{ u }} /etc/systemd/system/{{ u }}
{% endfor -%}
$SUDO systemctl daemon-reload
$SUDO systemctl enable {{ unit }}
$SUDO systemctl restart {{ unit }}
{% else %}
# A new binary or manifest: the running one goes first (it finishes its pass).
svc_stop {{ service }} TERM 300
svc_start {{ service }} root env {% for e in env %}{{ e }} {% endfor %}{{ binary }} autoscale {{ manifest }}{% for a in args %} {{ a }}{% endfor %} --heartbeat {{ heartbeat }}
sleep 0.5
if ! svc_running {{ service }}; then
    echo "the autoscaler exited at once:" >&2
    tail -n 20 "$(svc_log {{ service }})" >&2 || true
    exit 1
fi
{% endif -%}
