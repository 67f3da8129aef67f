"""Benchmark: scaling table — evaluator wall time and peak memory for N = 100, 1,000, 10,000.

The store overhead set-up (benchmarks/store_overhead.py: `instant` checks, nothing to send), on
SQLite and PostgreSQL, one fresh interpreter per run, median of --runs. The last column is the
cost per alert: flat (or falling) means the cost grows linearly in N (or better).

    .venv/bin/python benchmarks/scaling.py [--sizes 100,1000,10000] [--runs 3] \
        [--dialect sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import sys

from _common import child_main
from store_overhead import measure


def main() -> int:
    if "--child" in sys.argv:
        child_main(sys.argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dialect", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--concurrency", type=int, default=16)
    options = parser.parse_args()
    sizes = [int(s) for s in options.sizes.split(",")]
    dialects = ["sqlite", "postgresql"] if options.dialect == "both" else [options.dialect]
    print(f"scaling: instant checks, concurrency {options.concurrency}, median of {options.runs}")
    print(f"  {'store':<11} {'N':>7} {'wall':>8} {'per alert':>10} {'peak RSS':>9} {'SQL':>6}")
    worst = 0.0
    for dialect in dialects:
        per_alert = []
        for n in sizes:
            m = measure(dialect, n, options.runs, options.concurrency)
            per_alert.append(m["per_alert_ms"])
            print(
                f"  {dialect:<11} {n:>7,} {m['wall']:>7.2f}s {m['per_alert_ms']:>7.3f} ms "
                f"{m['peak_rss_mb']:>6.0f} MB {m['statements']:>6.0f}"
            )
        growth = per_alert[-1] / per_alert[0]
        worst = max(worst, growth)
        print(
            f"  {dialect}: cost per alert at N={sizes[-1]:,} is {growth:.2f}x that at "
            f"N={sizes[0]:,} ({'linear or better' if growth <= 1.1 else 'worse than linear'})"
        )
    return 0 if worst <= 1.1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
