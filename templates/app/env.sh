# The app's environment, rendered by appgrid and read by start.sh as root.
# Mode 0600: it holds secrets (the database password). Never print it.
{%- for v in vars %}
{{ v.name }}={{ v.value }}
export {{ v.name }}
{%- endfor %}
