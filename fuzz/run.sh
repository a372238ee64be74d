#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 20); exits non-zero on a
# crash, a leak/timeout or an out-of-memory. Needs a nightly toolchain and cargo-fuzz:
#   rustup toolchain install nightly && cargo install cargo-fuzz --locked
# Usage: fuzz/run.sh [SECONDS]        (from anywhere)
# Extra read-only seed directories: FUZZ_SEEDS="dir1 dir2" (default: ../shared/corpus/dsmr
# relative to the repository root, when it exists).
set -euo pipefail

secs="${1:-20}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$here"

toolchain="${FUZZ_TOOLCHAIN:-nightly}"
targets=(dsmr_stream dsmr_parse_body)

seeds=()
for d in ${FUZZ_SEEDS:-"$root/../shared/corpus/dsmr"}; do
    if [[ -d "$d" ]]; then seeds+=("$d"); else echo "fuzz: no seed dir $d, skipping it" >&2; fi
done

cargo "+$toolchain" fuzz build -O

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
for t in "${targets[@]}"; do
    # The first corpus dir is the writable one; the seeds after it are only read.
    mkdir -p "$work/$t"
    cp "$root/bench/telegram-913.txt" "$work/$t/"
    echo "fuzz: $t for ${secs}s"
    if ! cargo "+$toolchain" fuzz run -O "$t" "$work/$t" "${seeds[@]}" -- \
        -max_total_time="$secs" -max_len=20000 -rss_limit_mb=1024 -malloc_limit_mb=64 -timeout=10 \
        -print_final_stats=1 2>"$work/$t.log"; then
        tail -n 60 "$work/$t.log" >&2
        echo "fuzz: $t FAILED; reproducer in $here/artifacts/$t/" >&2
        status=1
    else
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)' "$work/$t.log" || true
    fi
done
exit "$status"
