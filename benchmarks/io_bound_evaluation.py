"""Benchmark: I/O-bound evaluation — N alerts whose checks each wait L ms, concurrency C.

Each alert is a datasource_failure check on an HTTP data source: a local server on 127.0.0.1
(benchmarks/sink.py, its own process) that answers every GET after L ms. The floor is what
perfect overlap allows, ceil(N/C)·L; the target is ≤ 1.3 x floor. The figure is the evaluator's
wall time (`run_evaluation`, everything from claiming the first batch to recording the run) in a
fresh interpreter per run, imports warmed; `alerts evaluate` as a command also pays its start-up
(see startup.py), which is printed for reference with --with-command.

    .venv/bin/python benchmarks/io_bound_evaluation.py [--alerts 1000] [--latency-ms 50] \
        [--concurrency 32] [--runs 5] [--dialect sqlite|postgresql] [--with-command]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
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
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dialect", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--with-command", action="store_true")
    options = parser.parse_args()
    n, c, latency = options.alerts, options.concurrency, options.latency_ms / 1000

    with (
        tempfile.TemporaryDirectory() as tmp,
        slow_server(options.latency_ms) as base,
        scratch_url(options.dialect, Path(tmp)) as url,
    ):
        insert_alerts(
            url,
            n,
            condition_type="datasource_failure",
            config={"datasource_id": "slow-api", "timeout_seconds": 10},
            datasources=[{"id": "slow-api", "name": "Slow API", "url": f"{base}/health"}],
        )
        runs = [evaluate_in_child(Path(__file__), url, c) for _ in range(options.runs)]
        command_walls = []
        if options.with_command:
            env = {**os.environ, "ALERTS_DATABASE_URL": url}
            for _ in range(options.runs):
                started = time.perf_counter()
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "datamantri_alerts",
                        "evaluate",
                        "--all",
                        "--quiet",
                        "--concurrency",
                        str(c),
                    ],
                    env=env,
                    check=True,
                    capture_output=True,
                    timeout=300,
                )
                command_walls.append(time.perf_counter() - started)
    for r in runs:
        if r["evaluated"] != n or r["outcomes"] != {"ok": n}:
            raise SystemExit(f"unexpected run: {r}")

    floor = math.ceil(n / c) * latency
    wall = median([r["wall"] for r in runs])
    ratio = wall / floor
    print(
        f"I/O-bound evaluation: {n} alerts x {options.latency_ms:g} ms HTTP checks, "
        f"concurrency {c}, {options.dialect} store"
    )
    walls = ", ".join(f"{r['wall']:.2f}s" for r in runs)
    print(f"  runs: {walls}")
    print(
        f"  median evaluator wall time {wall:.2f}s; floor ceil(N/C)·L = {floor:.2f}s; "
        f"ratio {ratio:.2f} (target ≤ {RATIO_TARGET}) {verdict(ratio, RATIO_TARGET)}"
    )
    print(f"  evaluator CPU time {median([r['cpu'] for r in runs]):.2f}s")
    print(
        f"  peak RSS {max(r['peak_rss_mb'] for r in runs):.0f} MB, "
        f"{median([r['statements'] for r in runs]):.0f} SQL statements per run"
    )
    if command_walls:
        print(
            f"  `alerts evaluate --all` as a command (start-up included): median "
            f"{median(command_walls):.2f}s"
        )
    return 0 if ratio <= RATIO_TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
