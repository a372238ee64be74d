#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 20); exits non-zero on a
# crash, a leak/timeout or an out-of-memory. Needs cargo-fuzz (installed here when
# missing) and libFuzzer's unstable rustc flags: a nightly toolchain when rustup has
# one, otherwise the stable one with RUSTC_BOOTSTRAP=1.
# Usage: fuzz/run.sh [SECONDS]        (from anywhere)
# Extra read-only seed directories: FUZZ_SEEDS="dir1 dir2" (default: the
# conformance corpus crates/codec/tests/corpus: dsmr/ as is, dlms/*.hex decoded to
# binary). FUZZ_TOOLCHAIN=stable|nightly|<name> forces a toolchain; FUZZ_TARGETS="a b"
# runs only those targets.
set -euo pipefail

secs="${1:-20}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$here"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# A nightly if rustup has one; else stable, with RUSTC_BOOTSTRAP=1 so that it accepts
# the -Z flags cargo-fuzz passes (sanitizer, sancov).
toolchain="${FUZZ_TOOLCHAIN:-}"
if [[ -z "$toolchain" ]]; then
    if command -v rustup >/dev/null 2>&1 && rustup toolchain list | grep -q '^nightly'; then
        toolchain=nightly
    else
        toolchain=stable
    fi
fi
cargo=(cargo)
if command -v rustup >/dev/null 2>&1; then cargo+=("+$toolchain"); fi
if [[ "$toolchain" != nightly* ]]; then export RUSTC_BOOTSTRAP=1; fi
echo "fuzz: toolchain $toolchain${RUSTC_BOOTSTRAP:+ (RUSTC_BOOTSTRAP=1)}"

all=(dsmr_stream dsmr_parse_body dlms_stream mbus_frame hdlc_frame cosem_notification chunking)
read -r -a targets <<<"${FUZZ_TARGETS:-${all[*]}}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Seeds. libFuzzer reads raw bytes: the corpus's DLMS vectors are hex text, so decode
# them into a temp dir (the hex text stays a seed too: the stream decoder reads hex lines).
seeds=()
for d in ${FUZZ_SEEDS:-"$root/crates/codec/tests/corpus/dsmr" "$root/crates/codec/tests/corpus/dlms"}; do
    if [[ ! -d "$d" ]]; then
        echo "fuzz: no seed dir $d, skipping it" >&2
        continue
    fi
    seeds+=("$d")
    if compgen -G "$d/*.hex" >/dev/null; then
        bin="$work/seeds-$(basename "$d")-bin"
        mkdir -p "$bin"
        for f in "$d"/*.hex; do
            out="$bin/$(basename "$f" .hex).bin"
            if command -v xxd >/dev/null 2>&1; then
                tr -cd '0-9A-Fa-f' <"$f" | xxd -r -p >"$out"
            else
                python3 -c 'import re,sys; sys.stdout.buffer.write(bytes.fromhex(re.sub(r"[^0-9A-Fa-f]", "", open(sys.argv[1]).read())))' "$f" >"$out"
            fi
        done
        seeds+=("$bin")
    fi
done

"${cargo[@]}" fuzz build -O

status=0
for t in "${targets[@]}"; do
    # The first corpus dir is the writable one; the seeds after it are only read.
    mkdir -p "$work/$t"
    cp "$root/bench/telegram-913.txt" "$work/$t/"
    echo "fuzz: $t for ${secs}s"
    if ! "${cargo[@]}" fuzz run -O "$t" "$work/$t" "${seeds[@]}" -- \
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
