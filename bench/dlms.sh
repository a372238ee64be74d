#!/usr/bin/env bash
# DLMS decrypt + decode speed, side by side on the same real frames (conformance corpus):
# the EVN two-segment M-Bus frame (security control 0x20) and the NEXXTLAB Smarty frame
# (0x30, GCM tag). meterkast-codec via criterion (crates/codec/benches/dlms.rs) and the
# Python gurux-dlms, dlms-cosem and dsmr-parser (bench/dlms_py_bench.py, installed into
# bench/.venv). Each pinned to one core. bench/RESULTS-dlms.md says what each row does.
#
# Usage: bench/dlms.sh [SECONDS]     (criterion measurement time per row, default 3)
set -euo pipefail

secs="${1:-3}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
corpus="$root/crates/codec/tests/corpus"
cd "$root"

if [[ ! -f "$corpus/dlms/at_evn_noe_doc_kaifa_mbus.hex" ]]; then
    echo "dlms.sh: the conformance corpus is missing at $corpus" >&2
    exit 1
fi

pin=()
if command -v taskset >/dev/null 2>&1 && taskset -c 0 true 2>/dev/null; then
    pin=(taskset -c 0)
fi

# Python side: a venv with pinned peers (dsmr-parser 1.11.2 pulls dlms-cosem in).
if [[ ! -x "$here/.venv/bin/python" ]]; then
    python3 -m venv "$here/.venv"
fi
"$here/.venv/bin/python" -m pip install -q --disable-pip-version-check \
    "dlms-cosem==21.3.2" "gurux-dlms==1.0.203" "dsmr-parser==1.11.2"

out="$here/out"
mkdir -p "$out"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/dlms-load.txt"

# Rust side. Build first (not pinned), then run the bench pinned to one core.
cargo bench -p meterkast-codec --bench dlms --no-run
rm -rf "$root/target/criterion/evn" "$root/target/criterion/smarty"
"${pin[@]}" cargo bench -p meterkast-codec --bench dlms -- \
    --warm-up-time 1 --measurement-time "$secs" --noplot | tee "$out/criterion-dlms.txt"

"${pin[@]}" "$here/.venv/bin/python" "$here/dlms_py_bench.py" "$corpus" "$secs" \
    >"$out/dlms_py.json"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/dlms-load.txt"

# One table: criterion's mean estimates, the Python figures, and the ratio of each
# Python row to our row for the same frame.
python3 - "$root/target/criterion" "$out/dlms_py.json" <<'PY'
import json, os, sys
crit, py = sys.argv[1], sys.argv[2]
rows = {}
for d, _, files in os.walk(crit):
    if os.path.basename(d) == "new" and "estimates.json" in files:
        bench = json.load(open(os.path.join(d, "benchmark.json")))
        if bench["group_id"] in ("evn", "smarty"):
            est = json.load(open(os.path.join(d, "estimates.json")))
            rows[bench["full_id"]] = est["mean"]["point_estimate"]
for k, v in json.load(open(py)).items():
    rows[k + " (Python)"] = v["ns_per_frame"]
order = [
    ("evn/decoder", "evn/decoder"),
    ("gurux/evn (Python)", "evn/decoder"),
    ("evn/aes-ctr", "evn/decoder"),
    ("evn/mbus-frame", "evn/decoder"),
    ("evn/cosem-parse", "evn/decoder"),
    ("evn/cosem-decode", "evn/decoder"),
    ("dlms-cosem/evn-plain (Python)", "evn/cosem-decode"),
    ("evn/decoder-new", "evn/decoder"),
    ("smarty/decoder", "smarty/decoder"),
    ("dsmr-parser/smarty (Python)", "smarty/decoder"),
    ("smarty/aes-gcm", "smarty/decoder"),
    ("dlms-cosem/smarty-decrypt (Python)", "smarty/aes-gcm"),
    ("smarty/dsmr-parse", "smarty/decoder"),
]
print()
print("EVN 2-segment M-Bus frame (282 B) and Smarty frame (647 B), one core")
print(f"{'row':36} {'ns/frame':>12} {'frames/s':>14} {'vs':>18}")
for k, ref in order:
    if k in rows and ref in rows:
        ns = rows[k]
        print(f"{k:36} {ns:12.1f} {1e9 / ns:14,.0f} {ns / rows[ref]:8.2f}x {ref}")
PY
