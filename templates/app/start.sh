#!/bin/sh
# Starts the app under appgrid's supervisor, rendered by appgrid. It runs as
# root so that the env file can stay root-only (0600), then drops to the app's
# user. The start command is a shell command line (like a Procfile's) and may
# fork, so this wrapper stays as the process-group leader: TERM is passed to
# the whole group, and the wrapper exits when the app does.
set -eu
set -a
. {{ env_file }}
set +a
cd {{ current }}
user=nobody
if id -u appgrid-app >/dev/null 2>&1; then user=appgrid-app; fi
trap 'trap "" TERM INT; kill -TERM 0 2>/dev/null || true; wait' TERM INT
if [ "$(id -u)" = 0 ] && [ "$user" != root ]; then
    setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- /bin/sh -c {{ start }} &
else
    /bin/sh -c {{ start }} &
fi
wait $!
