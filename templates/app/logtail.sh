# The app's log: its size in bytes first (`@@size=N`), then either its last
# {{ lines }} lines or, with an offset (`appgrid logs -f`), what was written
# after that byte (from the start again when the log is shorter: rotated).
set -eu
log={{ root }}/var/log/appgrid/app.log
size=0
if [ -f "$log" ]; then size=$(wc -c < "$log"); fi
echo "@@size=$size"
offset={{ offset }}
if [ -z "$offset" ]; then
    tail -n {{ lines }} "$log" 2>/dev/null || true
    exit 0
fi
if [ "$size" -lt "$offset" ]; then offset=0; fi
if [ "$size" -gt "$offset" ]; then
    tail -c +"$((offset + 1))" "$log" | head -c "$((size - offset))"
fi
