# `appgrid db psql`: psql as the app's user to this node's database. The
# password reaches psql through its environment only (this file is 0600 and
# removed before psql starts).
set -eu
psql={{ pg_bin }}/psql
if ! [ -x "$psql" ]; then psql=psql; fi
PGPASSWORD={{ password }}
export PGPASSWORD
exec "$psql" -h {{ addr }} -p {{ port }} -U {{ user }} -d {{ database }} {% for a in argv %}{{ a }} {% endfor %}
