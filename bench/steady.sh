#!/usr/bin/env bash
# Steady state of the daemon with one meter at 1 telegram/s (issue 4): resident memory
# and CPU of `meterkast run --source sim://dsmr5`, measured for SECONDS after a 30 s
# warm-up.
#
# Usage: bench/steady.sh [SECONDS]     (default 300)
#
# RSS is VmRSS from /proc/PID/status, sampled every second (the maximum is printed);
# CPU is utime+stime from /proc/PID/stat over the window, as % of one core.
set -euo pipefail

secs="${1:-300}"
warmup=30
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

cargo build --release
bin="$root/target/release/meterkast"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/meterkast-bench-steady.XXXXXX")"
pid=""
cleanup() {
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# utime + stime in clock ticks (fields 14 and 15; the command name may hold spaces).
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

echo "cores: $(nproc); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" run --source sim://dsmr5 --db "$tmp/store.db" --http "127.0.0.1:$port" \
    2>"$tmp/run.err" &
pid=$!
sleep "$warmup"
if ! kill -0 "$pid" 2>/dev/null; then
    echo "meterkast run exited during warm-up:" >&2
    cat "$tmp/run.err" >&2
    exit 1
fi
threads=$(awk '/^Threads:/ { print $2 }' "/proc/$pid/status")
hz=$(getconf CLK_TCK)
c0=$(ticks "$pid")
t0=$(date +%s.%N)
max_rss=0
for ((i = 0; i < secs; i++)); do
    r=$(rss_kb "$pid")
    (( r > max_rss )) && max_rss=$r
    sleep 1
done
c1=$(ticks "$pid")
t1=$(date +%s.%N)
end_rss=$(rss_kb "$pid")
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
kill -TERM "$pid"
wait "$pid" || true
pid=""
stored=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COALESCE(SUM(n), 0) FROM chunks").fetchone()[0])' "$tmp/store.db")
awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v hz="$hz" -v rss="$max_rss" \
    -v end="$end_rss" -v th="$threads" -v st="$stored" 'BEGIN {
    printf "window: %.1f s after %d s warm-up; threads: %d; readings stored: %d\n", t1 - t0, '"$warmup"', th, st
    printf "max RSS: %.1f MiB (%d kB); at the end: %d kB\n", rss / 1024, rss, end
    printf "CPU: %.3f%% of one core (%d ticks at %d Hz)\n", (c1 - c0) / hz / (t1 - t0) * 100, c1 - c0, hz
}'
