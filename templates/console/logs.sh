# `appgrid logs`: the logs under $ROOT/var/log/appgrid whose names start with
# one of the given prefixes. Per file: a marker line with its name, size in
# bytes and modification time (epoch seconds), then its last {{ lines }}
# lines, or what was written after its offset (`-f`; from the start again
# when the file is shorter: rotated; a file new to `-f` from its start).
set -u
dir={{ root }}/var/log/appgrid
marker={{ marker }}
for f in "$dir"/*.log; do
    [ -f "$f" ] || continue
    name=${f##*/}
    case "$name" in
{%- for p in prefixes %}
    {{ p }}*) ;;
{%- endfor %}
    *) continue ;;
    esac
    size=$(wc -c < "$f")
    mtime=$(stat -c %Y "$f" 2>/dev/null || echo 0)
    echo "$marker file=$name size=$size mtime=$mtime"
    offset=
{%- for o in offsets %}
    if [ "$name" = {{ o.0 }} ]; then offset={{ o.1 }}; fi
{%- endfor %}
{%- if follow %}
    if [ -z "$offset" ]; then offset=0; fi
{%- endif %}
    if [ -z "$offset" ]; then
        tail -n {{ lines }} "$f" 2>/dev/null || true
        continue
    fi
    if [ "$size" -lt "$offset" ]; then offset=0; fi
    if [ "$size" -gt "$offset" ]; then
        tail -c +"$((offset + 1))" "$f" | head -c "$((size - offset))"
    fi
done
