# HAProxy runtime API commands over the stats socket, one connection each;
# each answer ends with a marker line.
set -eu
sock={{ root }}/run/appgrid/haproxy.sock
{%- for c in commands %}
printf '%s\n' {{ c }} | socat -t 5 - "UNIX-CONNECT:$sock"
echo '@@appgrid-end@@'
{%- endfor %}
