#!/usr/bin/env bash
# Decode speed, side by side on the same 913-byte DSMR 5 telegram (bench/telegram-913.txt):
# meterkast-codec, the dsmr5 crate (criterion, crates/codec/benches/decode.rs) and the
# Python dsmr-parser (installed into bench/.venv). Each pinned to one core.
#
# Usage: bench/decode.sh [SECONDS]     (criterion measurement time per row, default 3)
set -euo pipefail

secs="${1:-3}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

pin=()
if command -v taskset >/dev/null 2>&1 && taskset -c 0 true 2>/dev/null; then
    pin=(taskset -c 0)
fi

# Python side: a venv with a pinned dsmr-parser.
if [[ ! -x "$here/.venv/bin/python" ]]; then
    python3 -m venv "$here/.venv"
fi
"$here/.venv/bin/python" -m pip install -q --disable-pip-version-check "dsmr-parser==1.11.2"

out="$here/out"
mkdir -p "$out"

# Rust side. Build first (not pinned), then run the bench pinned to one core.
cargo bench -p meterkast-codec --bench decode --no-run
rm -rf "$root/target/criterion"
"${pin[@]}" cargo bench -p meterkast-codec --bench decode -- \
    --warm-up-time 1 --measurement-time "$secs" --noplot | tee "$out/criterion.txt"

"${pin[@]}" "$here/.venv/bin/python" "$here/dsmr_parser_bench.py" \
    "$here/telegram-913.txt" "$secs" >"$out/dsmr_parser.json"

# One table: criterion's mean estimates plus the Python figure.
python3 - "$root/target/criterion" "$out/dsmr_parser.json" <<'PY'
import json, os, sys
crit, py = sys.argv[1], sys.argv[2]
rows = {}
for d, _, files in os.walk(crit):
    if os.path.basename(d) == "new" and "estimates.json" in files:
        bench = json.load(open(os.path.join(d, "benchmark.json")))
        est = json.load(open(os.path.join(d, "estimates.json")))
        rows[bench["full_id"]] = est["mean"]["point_estimate"]
p = json.load(open(py))
rows["dsmr-parser (Python)"] = p["ns_per_telegram"]
order = ["ours/frame+crc+parse", "ours/frame+crc+parse+reading", "ours/decoder",
         "dsmr5/parse", "dsmr-parser (Python)", "crc16_arc/telegram"]
ref = rows["ours/frame+crc+parse"]
print()
print("913-byte DSMR 5 telegram, one core")
print(f"{'decoder':32} {'ns/telegram':>12} {'telegrams/s':>14} {'vs ours':>9}")
for k in order + sorted(set(rows) - set(order)):
    if k in rows:
        ns = rows[k]
        print(f"{k:32} {ns:12.1f} {1e9 / ns:14,.0f} {ns / ref:8.2f}x")
PY
