# Stop every appgrid process still on this machine (a host given back to its
# pool): everything carrying this machine's mark from the supervisor. Prints
# `PID COMMAND` for each process it found; nothing when the machine is clean.
set -eu
ROOT={{ root }}
{% include "lib/service.sh" %}
found=$(svc_marked | sort -un)
[ -n "$found" ] || exit 0
for p in $found; do
    printf '%s %s\n' "$p" "$(tr '\0' ' ' 2>/dev/null < "/proc/$p/cmdline" | cut -c1-80)"
done
i=0
while [ -n "$found" ]; do
    if [ $i -ge 100 ]; then
        # shellcheck disable=SC2086
        kill -KILL $found 2>/dev/null || true
        [ $i -lt 150 ] || { echo "still running after KILL: $found" >&2; exit 1; }
    elif [ $((i % 10)) = 0 ]; then
        # shellcheck disable=SC2086
        kill -TERM $found 2>/dev/null || true
    fi
    sleep 0.1
    i=$((i + 1))
    found=$(svc_marked | sort -un)
done
