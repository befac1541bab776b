#!/usr/bin/env bash
# Day-two timings (issue 9, BENCHMARKS.md): the blog with N web servers on
# the local provider (default 20); v2 is a changed copy of the app; then
# `rollback` to v1 (rolling, drained, no upload) timed, `logs -n 100` over
# every web server timed (5 runs), and `run -- true` timed (5 runs). Run as
# root from the repository:
#   CARGO_TARGET_DIR=… scripts/bench-console.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
dir=/var/tmp/appgrid-bench-console
rm -rf "$dir"; mkdir -p "$dir"; chmod 0755 "$dir"
export APPGRID_LOCAL_ROOT=$dir/machines
cargo build -q --bin appgrid
bin=${CARGO_TARGET_DIR:-target}/debug/appgrid
cp -r examples/app "$dir/app"
manifest() {
cat > "$dir/appgrid.toml" <<TOML
[app]
name = "benchconsole"
[provider]
kind = "local"
[release]
path = "$dir/app"
start = "/usr/bin/python3 app.py"
health = "/health"
[web]
instance_type = "t3.small"
count = $n
port = 8080
[load_balancer]
instance_type = "t3.small"
listen = 8000
[database]
instance_type = "m5.large"
schema = "$dir/app/schema.sql"
TOML
}
manifest
m=$dir/appgrid.toml
trap '"$bin" destroy "$m" --yes --allow-data-loss >/dev/null 2>&1 || true' EXIT
secs() { date +%s.%N; }
t0=$(secs); "$bin" apply "$m" --yes >/dev/null; t1=$(secs)
echo "apply of $n web servers: $(echo "$t1 - $t0" | bc) s"
echo 2 > "$dir/app/VERSION"
t0=$(secs); "$bin" apply "$m" --yes >/dev/null; t1=$(secs)
echo "release v2 on $n web servers: $(echo "$t1 - $t0" | bc) s"
t0=$(secs); "$bin" rollback "$m" v1 >/dev/null; t1=$(secs)
echo "rollback to v1 on $n web servers: $(echo "$t1 - $t0" | bc) s"
for i in 1 2 3 4 5; do
    t0=$(secs); lines=$("$bin" logs "$m" -n 100 | wc -l); t1=$(secs)
    echo "logs -n 100 ($n servers, $lines lines): $(echo "$t1 - $t0" | bc) s"
done
for i in 1 2 3 4 5; do
    t0=$(secs); "$bin" run "$m" -- true; t1=$(secs)
    echo "run -- true: $(echo "$t1 - $t0" | bc) s"
done
