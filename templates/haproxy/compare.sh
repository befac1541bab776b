# Is HAProxy running, and how does the new configuration differ from the
# one it runs? Prints absent | same | servers | config.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
dir="$ROOT/etc/appgrid/haproxy"
if ! svc_running haproxy || [ ! -f "$dir/haproxy.cfg" ]; then echo absent; exit 0; fi
if cmp -s "$dir/haproxy.cfg.new" "$dir/haproxy.cfg"; then echo same; exit 0; fi
if grep -v '# appgrid-server$' "$dir/haproxy.cfg.new" > "$dir/.new.settings" &&
   grep -v '# appgrid-server$' "$dir/haproxy.cfg" > "$dir/.cur.settings" &&
   cmp -s "$dir/.new.settings" "$dir/.cur.settings"; then
    echo servers
else
    echo config
fi
rm -f "$dir/.new.settings" "$dir/.cur.settings"
