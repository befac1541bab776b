# `appgrid db psql`: psql as the app's user to this node's database, over its
# Unix socket (pg_hba admits the app's users there with their password; TCP
# stays limited to allow_from). The password reaches psql through its
# environment only (this file is 0600 and removed before psql starts).
set -eu
psql={{ pg_bin }}/psql
if ! [ -x "$psql" ]; then psql=psql; fi
PGPASSWORD={{ password }}
export PGPASSWORD
exec "$psql" -h {{ root }}/run/appgrid/postgres -p {{ port }} -U {{ user }} -d {{ database }} {% for a in argv %}{{ a }} {% endfor %}
