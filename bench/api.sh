#!/usr/bin/env bash
# API speed (issue 5): `GET /api/v1/series` for a year at step=1d and a month at
# step=15m over a year of stored data, and `GET /api/v1/now` requests/s with wrk.
#
# Usage: bench/api.sh [INTERVAL_SECONDS]   (default 10)
#
# The year is simulated at INTERVAL_SECONDS and imported. The series endpoints read
# only the roll-up tables, whose size does not depend on the telegram interval (one row
# per quarter-hour, hour, day and month), so a year at 10 s gives the same queries as a
# year at 1 s with a tenth of the simulation time and disk. Needs wrk (apt-get install
# wrk) and python3. Temporary files are removed.
set -euo pipefail

interval="${1:-10}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release
bin="$root/target/release/meterkast"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/meterkast-bench-api.XXXXXX")"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

n=$(( 366 * 86400 / interval ))
echo "cores: $(nproc); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "simulating a year (2025-11-01 to 2026-11-02) at ${interval} s: $n telegrams..."
"$bin" simulate --dialect dsmr5 --count "$n" --seed 1 --start 2025-11-01T00:00:00Z \
    --interval "${interval}s" >"$tmp/year.txt"
"$bin" import --db "$tmp/year.db" "$tmp/year.txt"
rm -f "$tmp/year.txt"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MK_RETENTION_DAYS=100000 "$bin" run --db "$tmp/year.db" --http "127.0.0.1:$port" \
    --source "tcp://127.0.0.1:9" >"$tmp/daemon.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

python3 - "$port" <<'PY'
import json, statistics, sys, time, urllib.request
port = sys.argv[1]
def timed(path, n=50):
    url = f"http://127.0.0.1:{port}{path}"
    body = urllib.request.urlopen(url).read()  # warm-up, and a check
    times = []
    for _ in range(n):
        t = time.perf_counter()
        urllib.request.urlopen(url).read()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return body, statistics.median(times), times[int(len(times) * 0.95) - 1]
for name, path, want in [
    ("year at step=1d", "/api/v1/series?from=2025-11-01&to=2026-11-01&step=1d", 365),
    ("month at step=15m", "/api/v1/series?from=2026-03-01&to=2026-04-01&step=15m", 31 * 96 - 4),
    ("month at step=1h", "/api/v1/series?from=2026-10-01&to=2026-11-01&step=1h", 31 * 24 + 1),
]:
    body, med, p95 = timed(path)
    n = len(json.loads(body)["buckets"])
    assert n == want, (name, n, want)
    print(f"series {name:<18} {n:>5} buckets: median {med:6.2f} ms, p95 {p95:6.2f} ms (target < 20 ms)")
PY

echo "GET /api/v1/now with wrk (2 threads, 32 connections, 10 s):"
wrk -t2 -c32 -d10s "http://127.0.0.1:$port/api/v1/now" | grep -E "Requests/sec|Latency|requests in"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
