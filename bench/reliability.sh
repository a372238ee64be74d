#!/usr/bin/env bash
# Reliability probes (issue 17): a daemon with 48 hours of 1-second readings and a live
# simulated meter, then the probes of bench/reliability.py, each bounded (≤ 2 minutes,
# loopback only): raw series memory (one and 4 at once) and 16 stalled exports; 200
# SSE clients with series load; 1,000 stalled bridge clients; 500 slowloris
# connections. RSS is the daemon's, read from /proc.
#
# Usage: bench/reliability.sh [PROBE...]   (memory sse bridge slowloris; default all)
#        MK_BIN=target/release/meterkast bench/reliability.sh   (default: a debug build)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"
if [ -z "${MK_BIN:-}" ]; then
    cargo build -p meterkast
    MK_BIN="$root/target/debug/meterkast"
fi
tmp="$(mktemp -d "${TMPDIR:-/tmp}/meterkast-bench-reliability.XXXXXX")"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

echo "cores: $(nproc); load average before: $(cut -d' ' -f1-3 /proc/loadavg); binary: $MK_BIN"
"$MK_BIN" simulate --dialect dsmr5 --count 172800 --seed 1 --start 2026-01-10T00:00:00Z \
    --interval 1s >"$tmp/2days.txt"
"$MK_BIN" import --db "$tmp/m.db" "$tmp/2days.txt" >/dev/null 2>&1
rm -f "$tmp/2days.txt"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
bridge=$(free_port)
# 16 export places so that 16 stalled exports are measured, not refused.
MK_RETENTION_DAYS=100000 "$MK_BIN" run --db "$tmp/m.db" --http "127.0.0.1:$port" \
    --tcp-bridge "127.0.0.1:$bridge" --max-exports 16 \
    --source "sim://dsmr5?seed=2&interval=1s" >"$tmp/daemon.log" 2>&1 &
pid=$!
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
sleep 2

probes=("$@")
[ ${#probes[@]} -eq 0 ] && probes=(memory sse bridge slowloris)
for p in "${probes[@]}"; do
    timeout 120 python3 "$here/reliability.py" "$p" "$pid" "$port" "$bridge"
done
kill -0 "$pid" && echo "daemon alive after the probes; log lines: $(wc -l <"$tmp/daemon.log")"
grep -c "WARN\|ERROR" "$tmp/daemon.log" | sed 's/^/warnings and errors in the log: /' || true
