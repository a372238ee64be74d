"""Times dsmr-parser on the benchmark telegram; prints telegrams/s as JSON.

Usage: python dsmr_parser_bench.py TELEGRAM_FILE [SECONDS]
"""
import json
import sys
import timeit

from dsmr_parser import telegram_specifications
from dsmr_parser.parsers import TelegramParser


def main():
    path = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    with open(path, "rb") as f:
        text = f.read().decode("ascii")
    parser = TelegramParser(telegram_specifications.V5)  # checks the CRC too

    # Make sure it really parses (not an early error) and reads what the Rust bench reads.
    t = parser.parse(text, throw_ex=True)
    assert float(t.ELECTRICITY_USED_TARIFF_1.value) == 12345.678
    assert float(t.INSTANTANEOUS_VOLTAGE_L3.value) == 232.1

    timer = timeit.Timer(lambda: parser.parse(text))
    n, _ = timer.autorange()  # enough calls for >= 0.2 s
    reps = max(3, int(seconds / 0.2))  # about SECONDS in all
    best = min(timer.repeat(repeat=reps, number=n)) / n
    print(json.dumps({"name": "dsmr-parser", "ns_per_telegram": best * 1e9,
                      "telegrams_per_s": 1.0 / best}))


if __name__ == "__main__":
    main()
