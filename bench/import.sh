#!/usr/bin/env bash
# Import speed and stored size: N 1-second DSMR 5 telegrams from the simulator, imported
# into a fresh SQLite database with roll-ups (issue 4).
#
# Usage: bench/import.sh [N]      (default 2700000: one month; ~2.6 GB of temporary text)
#
# Prints telegrams/s (from the import's summary line and from the wall clock), the
# database size, bytes per reading, and the size projected for a year at the default
# 31-day retention (31 days of full-resolution chunks + a year of roll-ups), measured
# per table with SQLite's dbstat (python3's sqlite3 module). Temporary files are removed.
set -euo pipefail

n="${1:-2700000}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

cargo build --release
bin="$root/target/release/meterkast"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/meterkast-bench-import.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# ~945 bytes per telegram of text, ~25 bytes per reading in the database, plus slack.
need_kb=$(( n * 970 / 1024 + 262144 ))
avail_kb=$(df -Pk "$tmp" | awk 'NR == 2 { print $4 }')
if (( avail_kb < need_kb )); then
    echo "not enough disk space in $tmp: need $(( need_kb / 1024 )) MiB, have $(( avail_kb / 1024 )) MiB" >&2
    exit 1
fi

echo "cores: $(nproc); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "simulating $n telegrams..."
"$bin" simulate --dialect dsmr5 --count "$n" --seed 1 --start 2026-01-01T00:00:00Z \
    >"$tmp/capture.txt"
bytes=$(stat -c %s "$tmp/capture.txt")
echo "capture: $bytes bytes ($(( bytes / n )) bytes/telegram)"
# Read the capture once so that the timed import does not wait for the disk.
cat "$tmp/capture.txt" >/dev/null

echo "load average at import: $(cut -d' ' -f1-3 /proc/loadavg)"
TIMEFORMAT='%R %U %S'
{ time "$bin" import --db "$tmp/store.db" "$tmp/capture.txt" 2>"$tmp/import.err"; } 2>"$tmp/time.txt"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
summary=$(tail -n 1 "$tmp/import.err")
echo "$summary"
rate=$(sed -n 's/.*(\([0-9]*\) telegrams\/s).*/\1/p' <<<"$summary")
read -r wall user sys <"$tmp/time.txt"
echo "import: $rate telegrams/s (summary line); command: $wall s wall, $user s user + $sys s system CPU"
awk -v n="$n" -v w="$wall" -v u="$user" -v s="$sys" 'BEGIN {
    printf "CPU per telegram: %.2f us; cores busy on average: %.2f\n", (u + s) / n * 1e6, (u + s) / w
}'
rm -f "$tmp/capture.txt"

python3 - "$tmp/store.db" "$n" <<'PY'
import os, sqlite3, sys

db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
size = os.path.getsize(db) + (os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0)
readings = c.execute("SELECT COALESCE(SUM(n), 0) FROM chunks").fetchone()[0]
first, last = c.execute("SELECT MIN(start), MAX(end) FROM chunks").fetchone()
days = (last - first + 1) / 86400
try:
    per = dict(c.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
    how = "dbstat"
except sqlite3.OperationalError:
    # No dbstat in this SQLite: chunk payload plus ~20 bytes of row and index per chunk.
    payload, rows = c.execute("SELECT SUM(LENGTH(data)), COUNT(*) FROM chunks").fetchone()
    per = {"chunks": payload + 20 * rows}
    per["rollups"] = size - per["chunks"]
    how = "estimate (no dbstat)"
full = per.get("chunks", 0) + per.get("chunks_end", 0)
roll = per.get("rollups", 0)
other = max(size - full - roll, 0)
rows = dict(c.execute("SELECT step, COUNT(*) FROM rollups GROUP BY step"))
print(f"database: {size:,} bytes for {readings:,} readings over {days:.2f} days "
      f"({size / max(readings, 1):.1f} bytes/reading overall)")
print(f"  full resolution (chunks + index): {full:,} bytes = {full / max(readings, 1):.1f} bytes/reading  [{how}]")
print(f"  roll-ups: {roll:,} bytes ({rows}) = {roll / days:,.0f} bytes/day; other: {other:,} bytes")
year = full / max(readings, 1) * 31 * 86400 + roll / days * 365 + other
print(f"projected, one year at 31-day retention: {year / 1e6:.1f} MB "
      f"(31 days of readings {full / max(readings, 1) * 31 * 86400 / 1e6:.1f} MB "
      f"+ a year of roll-ups {roll / days * 365 / 1e6:.1f} MB)")
PY
