# memcached's `stats` on {{ addr }}:{{ port }}, over TCP.
set -eu
printf 'stats\r\nquit\r\n' | socat -t 3 -T 5 - TCP:{{ addr }}:{{ port }}
