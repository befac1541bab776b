set -eu
rm -f {{ file }}
