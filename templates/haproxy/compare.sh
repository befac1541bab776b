# Is HAProxy running, and how does the new configuration differ from the
# one it runs? Prints absent | same | servers | config, then whether the
# maintenance map and the TLS certificate differ: map same|changed,
# pem same|changed.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
dir="$ROOT/etc/appgrid/haproxy"
differs() { if [ -f "$1.new" ] && ! cmp -s "$1.new" "$1"; then echo changed; else echo same; fi; }
if ! svc_running haproxy || [ ! -f "$dir/haproxy.cfg" ]; then
    echo absent
elif cmp -s "$dir/haproxy.cfg.new" "$dir/haproxy.cfg"; then
    echo same
elif grep -v '# appgrid-server$' "$dir/haproxy.cfg.new" > "$dir/.new.settings" &&
   grep -v '# appgrid-server$' "$dir/haproxy.cfg" > "$dir/.cur.settings" &&
   cmp -s "$dir/.new.settings" "$dir/.cur.settings"; then
    echo servers
else
    echo config
fi
rm -f "$dir/.new.settings" "$dir/.cur.settings"
map=$(differs "$dir/maintenance.map")
pem=$(differs "$dir/tls.pem")
echo "map $map"
echo "pem $pem"
# Nothing to do: no copy of the key is left beside the one in use.
if [ "$map" = same ] && [ "$pem" = same ] && cmp -s "$dir/haproxy.cfg.new" "$dir/haproxy.cfg"; then
    rm -f "$dir/haproxy.cfg.new" "$dir/maintenance.map.new" "$dir/tls.pem.new"
fi
