#!/usr/bin/env bash
# Backup and restore time for a 1 GB database (issue 8, BENCHMARKS.md): a
# one-web-server app on the local provider, a table filled to about 1 GB,
# then `db backup` (the first one turns WAL archiving on), a second backup,
# and an in-place restore, each timed, with the restored table's checksum
# compared to the one at backup time. Run as root from the repository:
#   CARGO_TARGET_DIR=… scripts/bench-backup.sh [SIZE_MB]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1024}
dir=/var/tmp/appgrid-bench-backup
rm -rf "$dir"; mkdir -p "$dir"; chmod 0755 "$dir"
export APPGRID_LOCAL_ROOT=$dir/machines
cargo build -q --bin appgrid
bin=${CARGO_TARGET_DIR:-target}/debug/appgrid
app=$PWD/examples/app
cat > "$dir/appgrid.toml" <<TOML
[app]
name = "benchbackup"
[provider]
kind = "local"
[release]
path = "$app"
start = "/usr/bin/python3 app.py"
health = "/health"
[web]
instance_type = "t3.small"
count = 1
port = 8080
[load_balancer]
instance_type = "t3.small"
listen = 8000
[database]
instance_type = "m5.large"
schema = "$app/schema.sql"
[database.backup]
to = "$dir/backups"
TOML
m=$dir/appgrid.toml
trap '"$bin" destroy "$m" --yes --allow-data-loss --skip-final-backup >/dev/null 2>&1 || true' EXIT
"$bin" apply "$m" --yes >/dev/null
state=$dir/.appgrid/benchbackup/state.json
ip=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["resources"]["db.primary"]["attributes"]["private_ip"])' "$state")
export PGPASSWORD=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["resources"]["db.primary.config"]["attributes"]["password"])' "$state")
q() { psql -X -At -v ON_ERROR_STOP=1 -h "$ip" -U benchbackup -d benchbackup -c "$1"; }
rows=$((size_mb * 1024 * 1024 / 150))
t=$SECONDS
q "CREATE TABLE big (id bigint PRIMARY KEY, a text, b text)"
q "INSERT INTO big SELECT g, md5(g::text), md5((g * 7)::text) FROM generate_series(1, $rows) g"
echo "filled: $rows rows, $(q "SELECT pg_size_pretty(pg_database_size('benchbackup'))") in $((SECONDS - t)) s"
sum() { q "SELECT count(*) || ':' || sum(hashtext(a || b))::text FROM big"; }
before=$(sum)
now() { date +%s.%N; }
took() { echo "$(echo "$(now) - $1" | bc) s"; }
s=$(now); "$bin" db backup "$m" --json > "$dir/b1.json"
echo "first db backup (turns archiving on, restarts postgres): $(took "$s")"
s=$(now); "$bin" db backup "$m" --json > "$dir/b2.json"
echo "second db backup: $(took "$s")"
python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); print("backup", b["id"], "size", b["size"], "stored", b["repo_size"])' "$dir/b2.json"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$dir/b2.json")
q "DELETE FROM big WHERE id % 2 = 0" >/dev/null
s=$(now); "$bin" db restore "$m" "$id" --in-place >/dev/null
echo "restore in place: $(took "$s")"
after=$(sum)
[ "$before" = "$after" ] && echo "restored checksum equals the backup's ($after)" || { echo "checksum differs: $before vs $after"; exit 1; }
