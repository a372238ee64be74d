#!/usr/bin/env bash
# The ingest load test: N simulated meters at one telegram per second each, published
# through Mosquitto (QoS 1, as `meterkast run --forward` does) to WORKERS ingest workers
# (`meterkast run --ingest`, one MQTT 5 shared subscription) writing to one PostgreSQL
# database, all on this machine.
#
# Usage: bench/ingest-load.sh [N] [SECONDS] [WORKERS]     (default 5000 600 2)
#        bench/ingest-load.sh --find [SECONDS] [FROM] [STEP]
#            (default 60 4000 1000: N = FROM, FROM+STEP, ... until one does not hold)
#
# Reports, per run: frames published, readings stored, lost (published - stored); the
# publish-to-committed latency (p50, p90, p99, p99.9, from the workers' commit latency
# histograms, which measure from the `received` property the generator sets at publish
# time); CPU seconds of the workers, PostgreSQL, Mosquitto and the rest against what
# the cores could give; table sizes. A run holds when nothing is lost and p99 < 2 s.
#
# Needs: PostgreSQL on 127.0.0.1:5432 letting user postgres in without a password
# (.ci/run sets that up), psql, mosquitto (the binary: this script starts its own
# broker on a free port with queues large enough to lose nothing) and python3.
# Creates the database mk_load_PID and drops it at the end (KEEP=1 keeps it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"
for c in psql mosquitto python3 curl; do
    command -v "$c" >/dev/null || { echo "$c is needed (apt-get install postgresql-client mosquitto python3 curl)" >&2; exit 1; }
done

find=0
if [ "${1:-}" = "--find" ]; then
    find=1
    seconds="${2:-60}"
    from="${3:-4000}"
    step="${4:-1000}"
    workers=2
else
    n="${1:-5000}"
    seconds="${2:-600}"
    workers="${3:-2}"
fi

cargo build --release -p meterkast --bin meterkast --example loadgen
bin="$root/target/release/meterkast"
gen="$root/target/release/examples/loadgen"
pg() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -h 127.0.0.1 -U postgres "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tmp="$(mktemp -d "${TMPDIR:-/tmp}/meterkast-ingest-load.XXXXXX")"
pids=()
dbs=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "${KEEP:-0}" != 1 ]; then
        for d in "${dbs[@]}"; do pg -d postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" || true; done
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# CPU seconds (user + system) of the given processes.
cpu_of() {
    python3 - "$@" <<'EOF'
import os, sys
tick = os.sysconf("SC_CLK_TCK")
total = 0
for pid in sys.argv[1:]:
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += int(f[11]) + int(f[12])
    except (FileNotFoundError, ProcessLookupError, IndexError):
        pass
print(total / tick)
EOF
}
# CPU seconds the whole machine spent busy (everything but idle and iowait).
busy_all() { awk '/^cpu /{print ($2+$3+$4+$7+$8+$9)/100}' /proc/stat; }
pg_pids() { pgrep -u postgres -d ' ' . || true; }

# One run: N meters for SECONDS; prints its figures; returns 0 when it held.
run_once() {
    local n="$1" seconds="$2" workers="$3"
    local db="mk_load_$$_$n"
    dbs+=("$db")
    local url="postgres://postgres@127.0.0.1:5432/$db"
    pg -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"

    local mport
    mport="$(free_port)"
    cat >"$tmp/mosquitto.conf" <<EOF
listener $mport 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 0
log_dest stderr
log_type error
EOF
    mosquitto -c "$tmp/mosquitto.conf" 2>"$tmp/mosquitto.log" &
    local broker=$!
    pids+=("$broker")

    local wpids=() ports=()
    for w in $(seq 1 "$workers"); do
        local port
        port="$(free_port)"
        ports+=("$port")
        RUST_LOG=warn "$bin" run --db "$url" --ingest "mqtt://127.0.0.1:$mport/meters/+" \
            --ingest-client-id "load-w$w" --http "127.0.0.1:$port" --state-dir "$tmp" \
            >"$tmp/w$w.log" 2>&1 &
        wpids+=($!)
        pids+=($!)
    done
    for port in "${ports[@]}"; do
        for _ in $(seq 1 300); do
            curl -fs "http://127.0.0.1:$port/healthz" 2>/dev/null | grep -q '"connected":true' && break
            sleep 0.1
        done
        curl -fs "http://127.0.0.1:$port/healthz" | grep -q '"connected":true' \
            || { echo "a worker did not subscribe; its log:" >&2; cat "$tmp"/w*.log >&2; return 2; }
    done

    local cpu0_w cpu0_pg cpu0_b busy0 t0
    cpu0_w="$(cpu_of "${wpids[@]}")"; cpu0_pg="$(cpu_of $(pg_pids))"; cpu0_b="$(cpu_of "$broker")"
    busy0="$(busy_all)"; t0="$(date +%s.%N)"
    echo "== $n meters x $seconds s, $workers workers, $(nproc) cores"
    "$gen" --url "mqtt://127.0.0.1:$mport/meters/{meter}" --meters "$n" --seconds "$seconds" \
        --client-prefix "load-$n" >"$tmp/gen.json"
    cat "$tmp/gen.json"
    local published stored=0
    published="$(python3 -c "import json; print(json.load(open('$tmp/gen.json'))['published'])")"
    # Drain: what is queued at the broker or in the workers gets 120 s to be committed.
    for _ in $(seq 1 240); do
        stored="$(pg -d "$db" -c 'SELECT count(*) FROM readings')"
        [ "$stored" -ge "$published" ] && break
        sleep 0.5
    done
    local cpu1_w cpu1_pg cpu1_b busy1 t1
    cpu1_w="$(cpu_of "${wpids[@]}")"; cpu1_pg="$(cpu_of $(pg_pids))"; cpu1_b="$(cpu_of "$broker")"
    busy1="$(busy_all)"; t1="$(date +%s.%N)"
    for i in "${!ports[@]}"; do curl -fs "http://127.0.0.1:${ports[$i]}/metrics" >"$tmp/metrics$i.txt"; done
    local sizes
    sizes="$(pg -d "$db" -F ' ' -c "SELECT c.relname, pg_total_relation_size(c.oid) / 1048576 FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC")"
    local dbsize
    dbsize="$(pg -d "$db" -c "SELECT pg_database_size('$db') / 1048576")"
    for p in "${wpids[@]}" "$broker"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    python3 "$here/ingest_quantiles.py" --published "$published" --stored "$stored" \
        --wall "$(python3 -c "print($t1 - $t0)")" --cores "$(nproc)" \
        --cpu workers="$(python3 -c "print($cpu1_w - $cpu0_w)")" \
        --cpu postgres="$(python3 -c "print($cpu1_pg - $cpu0_pg)")" \
        --cpu mosquitto="$(python3 -c "print($cpu1_b - $cpu0_b)")" \
        --cpu all="$(python3 -c "print($busy1 - $busy0)")" \
        "$tmp"/metrics*.txt
    echo "database: $dbsize MB; tables (MB): $(echo "$sizes" | tr '\n' ';' | sed 's/;$//; s/;/, /g')"
    if grep -qi "error\|panic" "$tmp"/w*.log; then
        echo "worker log lines with errors:"; grep -hi "error\|panic" "$tmp"/w*.log | sort | uniq -c | head -5
    fi
    if [ "${KEEP:-0}" != 1 ]; then pg -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"; fi
    python3 "$here/ingest_quantiles.py" --published "$published" --stored "$stored" --holds "$tmp"/metrics*.txt
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "PostgreSQL $(pg -d postgres -c 'SHOW server_version'); $(mosquitto -h 2>/dev/null | head -1 || true)"
if [ "$find" = 0 ]; then
    run_once "$n" "$seconds" "$workers"
    exit $?
fi
n="$from"
best=0
while true; do
    if run_once "$n" "$seconds" "$workers"; then
        echo "-> $n meters HOLD"
        best="$n"
        n=$((n + step))
    else
        echo "-> $n meters do NOT hold"
        break
    fi
done
echo "highest N that held for $seconds s: $best"
