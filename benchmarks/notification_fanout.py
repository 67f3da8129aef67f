"""Benchmark: notification fan-out — 500 alerts start firing at once, 2 channels each.

Each alert is of the benchmark type `always_firing` (benchmarks/bench_checks_firing.py) with a
Slack and a Teams webhook on a local server (benchmarks/sink.py, its own process, 127.0.0.1) that
answers every POST after 100 ms. Every alert has its own webhook path, as real alerts of a team
would not all share one (the Slack pacing of one send per second per webhook would otherwise be
what is measured). Each run starts from a fresh store, so all 1,000 notifications are new.

Figure: wall time of the evaluator run (checks, episodes, outbox, delivery of all 1,000) and of
its delivery phase, against the floor ceil(1000/C)·0.1 s; target ≤ 1.3 x floor.

    .venv/bin/python benchmarks/notification_fanout.py [--alerts 500] [--latency-ms 100] \
        [--concurrency 32] [--runs 3] [--dialect sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

from _common import (
    child_main,
    evaluate_in_child,
    insert_alerts,
    median,
    scratch_url,
    slow_server,
    verdict,
)

RATIO_TARGET = 1.3


def main() -> int:
    if "--child" in sys.argv:
        child_main(sys.argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dialect", choices=["sqlite", "postgresql"], default="sqlite")
    options = parser.parse_args()
    n, c = options.alerts, options.concurrency
    sends = 2 * n

    runs = []
    with tempfile.TemporaryDirectory() as tmp, slow_server(options.latency_ms) as base:
        for _ in range(options.runs):
            with scratch_url(options.dialect, Path(tmp)) as url:
                insert_alerts(
                    url,
                    n,
                    condition_type="always_firing",
                    config={},
                    channels=["slack", "teams"],
                    recipients=lambda i: {
                        "slack": f"{base}/slack/{i}",
                        "teams": f"{base}/teams/{i}",
                    },
                )
                runs.append(evaluate_in_child(Path(__file__), url, c))
    for r in runs:
        sent = r["notifications"]["sent"]
        if r["evaluated"] != n or sent != sends or r["notifications"]["failed"]:
            raise SystemExit(f"unexpected run: {r}")

    floor = math.ceil(sends / c) * options.latency_ms / 1000
    wall = median([r["wall"] for r in runs])
    delivering = median([r["delivering"] for r in runs])
    ratio = wall / floor
    print(
        f"notification fan-out: {n} alerts firing x 2 channels = {sends} sends into "
        f"{options.latency_ms:g} ms sinks, concurrency {c}, {options.dialect} store"
    )
    print("  runs: " + ", ".join(f"{r['wall']:.2f}s" for r in runs))
    print(
        f"  median evaluator wall time {wall:.2f}s (checks + outbox {wall - delivering:.2f}s, "
        f"delivery {delivering:.2f}s); floor ceil({sends}/C)·{options.latency_ms / 1000:g} s = "
        f"{floor:.2f}s; ratio {ratio:.2f} (delivery alone {delivering / floor:.2f}; "
        f"target ≤ {RATIO_TARGET}) {verdict(ratio, RATIO_TARGET)}"
    )
    print(
        f"  evaluator CPU {median([r['cpu'] for r in runs]):.2f}s, "
        f"peak RSS {max(r['peak_rss_mb'] for r in runs):.0f} MB, "
        f"{median([r['statements'] for r in runs]):.0f} SQL statements per run"
    )
    return 0 if ratio <= RATIO_TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
