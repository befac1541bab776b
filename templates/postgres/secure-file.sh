# Hand a file that was put in place with mode 0600 to the postgres user.
set -eu
FILE={{ file }}
chown postgres:postgres "$FILE"
chmod 0600 "$FILE"
