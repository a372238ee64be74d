#!/usr/bin/env python3
"""Publish-to-committed latency of an ingest load run (bench/ingest-load.sh).

Adds up the `meterkast_ingest_commit_latency_seconds` histograms of the workers'
/metrics pages (given as files) and reads quantiles off the sum, interpolating
linearly inside a bucket. With --cpu NAME=SECONDS (and --wall, --cores) it also says
where the CPU went; with --holds it only answers, by its exit code, whether the run
held: nothing lost and the 99th percentile under 2 s.
"""
import argparse
import re
import sys

NAME = "meterkast_ingest_commit_latency_seconds_bucket"


def histogram(files):
    """Cumulative counts per upper bound, summed over the files."""
    total = {}
    for path in files:
        for line in open(path):
            m = re.match(NAME + r'\{le="([^"]+)"\} (\d+)', line)
            if m:
                le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
                total[le] = total.get(le, 0) + int(m.group(2))
    return sorted(total.items())


def quantile(h, q):
    """The q-quantile, interpolated inside its bucket."""
    count = h[-1][1] if h else 0
    if count == 0:
        return float("nan")
    want = q * count
    lo, below = 0.0, 0
    for le, cum in h:
        if cum >= want:
            if le == float("inf"):
                return lo
            inside = cum - below
            return lo + (le - lo) * ((want - below) / inside if inside else 1.0)
        lo, below = le, cum
    return lo


def within(h, limit):
    """The share of observations at or under `limit` (a bucket bound)."""
    count = h[-1][1] if h else 0
    return next((cum for le, cum in h if le == limit), 0) / count if count else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("metrics", nargs="+", help="the workers' /metrics pages, saved")
    ap.add_argument("--published", type=int, required=True)
    ap.add_argument("--stored", type=int, required=True)
    ap.add_argument("--wall", type=float)
    ap.add_argument("--cores", type=int)
    ap.add_argument("--cpu", action="append", default=[], help="NAME=CPU seconds")
    ap.add_argument("--holds", action="store_true")
    a = ap.parse_args()
    h = histogram(a.metrics)
    lost = max(a.published - a.stored, 0)
    p99 = quantile(h, 0.99)
    if a.holds:
        sys.exit(0 if lost == 0 and h and p99 < 2.0 else 1)
    print(f"published {a.published}, stored {a.stored}, lost {lost}; committed (histogram) {h[-1][1] if h else 0}")
    print("latency publish->committed (s): " + ", ".join(
        f"p{q * 100:g} {quantile(h, q):.3f}" for q in (0.5, 0.9, 0.99, 0.999)
    ) + f"; within 2 s: {within(h, 2.0) * 100:.2f}%")
    if a.cpu and a.wall and a.cores:
        cpu = dict(kv.split("=", 1) for kv in a.cpu)
        cpu = {k: float(v) for k, v in cpu.items()}
        cap = a.wall * a.cores
        parts = [f"{k} {v:.0f}" for k, v in cpu.items() if k != "all"]
        if "all" in cpu:
            rest = cpu["all"] - sum(v for k, v in cpu.items() if k != "all")
            parts.append(f"rest {max(rest, 0):.0f}")
            parts.append(f"busy {cpu['all'] / cap * 100:.0f}% of {cap:.0f} core-s")
        print("CPU seconds over the run: " + ", ".join(parts))
        if a.stored:
            print(f"CPU per stored telegram: workers {cpu.get('workers', 0) / a.stored * 1e6:.0f} us, "
                  f"PostgreSQL {cpu.get('postgres', 0) / a.stored * 1e6:.0f} us, "
                  f"Mosquitto {cpu.get('mosquitto', 0) / a.stored * 1e6:.0f} us")
    print("HOLDS" if lost == 0 and h and p99 < 2.0 else "DOES NOT HOLD (target: nothing lost, p99 < 2 s)")


if __name__ == "__main__":
    main()
