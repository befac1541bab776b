# The machine's memory, for sizing memcached.
set -eu
awk '/^MemTotal:/ { print $2 }' /proc/meminfo
