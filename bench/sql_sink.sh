#!/usr/bin/env bash
# Throughput of the SQL history sink: `meterkast run` back-fills DAYS of a simulated
# meter (one reading every 10 s) and writes them to MariaDB and to PostgreSQL (one at a
# time, each into a fresh database); the figure is readings committed per second from
# the first to the last commit, read from /metrics.
#
# Usage: bench/sql_sink.sh [DAYS]      (default 30: 259,200 readings)
#
# Needs MariaDB on 127.0.0.1:3306 (root, no password) and PostgreSQL on 127.0.0.1:5432
# (user postgres, trust, database `test`), as .ci/run sets up.
set -euo pipefail

days="${1:-30}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

cargo build --release -p meterkast
bin="$root/target/release/meterkast"
name="mk_bench_sink_$$"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/meterkast-bench-sql.XXXXXX")"
pid=""
cleanup() {
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    mysql -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS $name" 2>/dev/null || true
    psql -q -h127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

metric() { curl -sf "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
want=$((days * 8640))
echo "cores: $(nproc); load average before: $(cut -d' ' -f1-3 /proc/loadavg); $want readings"

for url in "mysql://root@127.0.0.1:3306/$name" "postgres://postgres@127.0.0.1:5432/$name"; do
    case "$url" in
        mysql*) mysql -uroot -h127.0.0.1 -e "CREATE DATABASE $name" ;;
        *) psql -q -h127.0.0.1 -U postgres -d test -c "CREATE DATABASE $name" ;;
    esac
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    rm -f "$tmp"/store.db*
    "$bin" run --source "sim://dsmr5?seed=1&backfill=${days}d" --db "$tmp/store.db" \
        --http "127.0.0.1:$port" --sql-sink "$url" 2>"$tmp/run.err" &
    pid=$!
    first="" n=0
    while :; do
        sleep 0.2
        n=$(metric meterkast_sql_sink_written_total || echo 0)
        [[ -z "$first" && "${n:-0}" -gt 0 ]] && { first=$(date +%s.%N); n0=$n; }
        [[ "${n:-0}" -ge "$want" ]] && break
        kill -0 "$pid" 2>/dev/null || { cat "$tmp/run.err"; exit 1; }
    done
    last=$(date +%s.%N)
    kill -TERM "$pid"; wait "$pid" || true; pid=""
    awk -v a="$first" -v b="$last" -v n="$n" -v n0="$n0" -v u="${url%%://*}" \
        'BEGIN { printf "%-9s %d readings, %.0f readings/s committed\n", u, n, (n - n0) / (b - a) }'
    case "$url" in
        mysql*) mysql -uroot -h127.0.0.1 -e "DROP DATABASE $name" ;;
        *) psql -q -h127.0.0.1 -U postgres -d test -c "DROP DATABASE $name WITH (FORCE)" ;;
    esac
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
