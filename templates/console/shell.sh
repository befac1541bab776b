# `appgrid ssh`: a login shell (or the command given) in the machine's
# directory: its root for the `local` provider, the home directory on a host.
ROOT={{ root }}
if [ -n "$ROOT" ]; then cd "$ROOT"; else cd "${HOME:-/}"; fi
{% if argv | length > 0 -%}
exec {% for a in argv %}{{ a }} {% endfor %}
{%- else -%}
exec "${SHELL:-/bin/sh}" -l
{%- endif %}
