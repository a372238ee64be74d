#!/usr/bin/env bash
# The PostgreSQL store: import speed, and per-meter API latency with millions of
# readings of many meters in the database.
#
# Usage: bench/postgres.sh [METERS] [READINGS_PER_METER] [ONE_METER_READINGS]
#        (default 200 10000 500000: 2 M readings of 200 meters)
#
# Needs PostgreSQL on 127.0.0.1:5432 that lets user postgres in without a password (as
# the tests do; .ci/run sets that up) and psql; python3 for the timing. Creates the
# database mk_bench_PID and drops it at the end; temporary files are removed.
#
# 1. `meterkast import` of ONE_METER_READINGS 1-second DSMR 5 telegrams of one meter
#    into SQLite, and into PostgreSQL both ways readings can go in (multi-row INSERT
#    from arrays, and binary COPY into a temporary table).
# 2. METERS simulated meters (seeds 1..METERS), READINGS_PER_METER 10-second telegrams
#    each, imported 25 meters per `meterkast import`.
# 3. A daemon on that database: for 50 random meters, a day at step=15m (roll-ups) and
#    an hour at step=raw (360 readings); median and 99th percentile. Table sizes.
set -euo pipefail

meters="${1:-200}"
per="${2:-10000}"
one="${3:-500000}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"
command -v psql >/dev/null || { echo "psql is needed: apt-get install postgresql-client" >&2; exit 1; }
cargo build --release -p meterkast
bin="$root/target/release/meterkast"

db="mk_bench_$$"
server="postgres://postgres@127.0.0.1:5432"
pg() { psql -X -q -At -h 127.0.0.1 -U postgres "$@"; }
tmp="$(mktemp -d "${TMPDIR:-/tmp}/meterkast-bench-pg.XXXXXX")"
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    pg -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
    rm -rf "$tmp"
}
trap cleanup EXIT
pg -d postgres -c "CREATE DATABASE $db"

echo "cores: $(nproc); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "PostgreSQL: $(pg -d "$db" -c 'SHOW server_version'); TimescaleDB available: $(pg -d "$db" -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'")"

echo "== 1. import, one meter, $one 1-second telegrams"
"$bin" simulate --dialect dsmr5 --count "$one" --seed 1 --start 2026-01-01T00:00:00Z >"$tmp/one.txt"
cat "$tmp/one.txt" >/dev/null
echo -n "SQLite:     "; "$bin" import --db "$tmp/one.db" "$tmp/one.txt" 2>&1 | tail -1
echo -n "PostgreSQL, binary COPY + INSERT (the default for large batches): "
"$bin" import --db "$server/$db?schema=one" "$tmp/one.txt" 2>&1 | tail -1
echo -n "PostgreSQL, INSERT from unnest(arrays) (MK_PG_INSERT=unnest): "
MK_PG_INSERT=unnest "$bin" import --db "$server/$db?schema=one_unnest" "$tmp/one.txt" 2>&1 | tail -1
rm -f "$tmp/one.txt" "$tmp/one.db"*

echo "== 2. import, $meters meters x $per 10-second telegrams"
url="$server/$db?schema=many"
started=$(date +%s.%N)
batch=()
import_batch() {
    [ "${#batch[@]}" -eq 0 ] && return
    "$bin" import --db "$url" "${batch[@]}" 2>&1 | tail -1 | sed 's/ into .*//'
    rm -f "${batch[@]}"
    batch=()
}
sim_time=0
for s in $(seq 1 "$meters"); do
    t=$(date +%s.%N)
    "$bin" simulate --dialect dsmr5 --count "$per" --seed "$s" --interval 10s \
        --start 2026-01-01T00:00:00Z >"$tmp/m$s.txt"
    sim_time=$(python3 -c "print($sim_time + $(date +%s.%N) - $t)")
    batch+=("$tmp/m$s.txt")
    if [ "${#batch[@]}" -ge 25 ]; then import_batch; fi
done
import_batch
total=$(python3 -c "print($(date +%s.%N) - $started - $sim_time)")
rows=$(pg -d "$db" -c "SELECT count(*) FROM many.readings")
echo "stored $rows readings of $(pg -d "$db" -c 'SELECT count(*) FROM many.meters') meters in $(printf %.1f "$total") s of import: $(python3 -c "print(round($rows / $total))") readings/s"
pg -d "$db" -c "VACUUM ANALYZE many.readings" -c "VACUUM ANALYZE many.rollups"
pg -d "$db" -F ' ' -c "SELECT 'readings: ' || pg_size_pretty(pg_total_relation_size('many.readings')) || ', ' || (pg_total_relation_size('many.readings') / greatest(count(*), 1)) || ' bytes per reading with indexes' FROM many.readings"
pg -d "$db" -F ' ' -c "SELECT 'rollups: ' || pg_size_pretty(pg_total_relation_size('many.rollups')) || ', ' || count(*) || ' rows, ' || (pg_total_relation_size('many.rollups') / greatest(count(*), 1)) || ' bytes per row' FROM many.rollups"

echo "== 3. per-meter API latency"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MK_RETENTION_DAYS=100000 "$bin" run --db "$url" --http "127.0.0.1:$port" \
    --source "tcp://127.0.0.1:9" >"$tmp/daemon.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
python3 - "$port" <<'PY'
import json, random, statistics, sys, time, urllib.request
port = sys.argv[1]
base = f"http://127.0.0.1:{port}"
ids = [m["id"] for m in json.load(urllib.request.urlopen(base + "/api/v1/meters"))]
random.seed(1)
pick = [random.choice(ids) for _ in range(50)]
def timed(name, path, key, want):
    times = []
    for m in pick:
        url = base + path.format(m=m)
        t = time.perf_counter()
        body = json.load(urllib.request.urlopen(url))
        times.append((time.perf_counter() - t) * 1000)
        assert len(body[key]) == want, (name, m, len(body[key]))
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"{name:<28} median {statistics.median(times):6.2f} ms, p99 {p99:6.2f} ms ({len(ids)} meters)")
timed("a day at step=15m (96)", "/api/v1/series?meter={m}&from=2026-01-01&to=2026-01-02&step=15m", "buckets", 96)
timed("an hour at step=raw (360)", "/api/v1/series?meter={m}&from=2026-01-01T10:00:00Z&to=2026-01-01T11:00:00Z&step=raw", "readings", 360)
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
