"""Benchmark: evaluator store overhead — N active alerts whose checks return ok at once.

Each alert is of the benchmark type `instant` (benchmarks/bench_checks.py), so what is measured is
the evaluator's own work: claiming leases, loading alerts, running the check pool, writing states
in batches, recording the run. Nothing is sent. Each run is a fresh interpreter (imports warmed
before the clock starts) over the same store; `--all` makes every alert due again.

Figures: evaluator wall time per alert (target ≤ 0.5 ms SQLite, ≤ 1 ms PostgreSQL), peak RSS of
the evaluator process (target ≤ 200 MB), SQL statements per run (must stay a fixed handful per
batch of 100 alerts, not one per alert and column).

    .venv/bin/python benchmarks/store_overhead.py [--dialect sqlite|postgresql|both] \
        [--alerts 10000] [--runs 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import child_main, evaluate_in_child, insert_alerts, median, scratch_url, verdict

TARGET_MS = {"sqlite": 0.5, "postgresql": 1.0}
TARGET_RSS_MB = 200


def measure(dialect: str, count: int, runs: int, concurrency: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, scratch_url(dialect, Path(tmp)) as url:
        insert_alerts(url, count, condition_type="instant", config={})
        results = [evaluate_in_child(Path(__file__), url, concurrency) for _ in range(runs)]
    for r in results:
        if r["evaluated"] != count or r["outcomes"] != {"ok": count}:
            raise SystemExit(f"unexpected run: {r}")
    wall = median([r["wall"] for r in results])
    return {
        "wall": wall,
        "walls": [r["wall"] for r in results],
        "per_alert_ms": wall / count * 1000,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
        "rss_before_mb": median([r["rss_before_mb"] for r in results]),
        "statements": median([r["statements"] for r in results]),
    }


def main() -> int:
    if "--child" in sys.argv:
        child_main(sys.argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialect", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    options = parser.parse_args()
    dialects = ["sqlite", "postgresql"] if options.dialect == "both" else [options.dialect]
    failed = False
    for dialect in dialects:
        m = measure(dialect, options.alerts, options.runs, options.concurrency)
        target_ms = TARGET_MS[dialect]
        floor = options.alerts * target_ms / 1000
        ok = m["per_alert_ms"] <= target_ms and m["peak_rss_mb"] <= TARGET_RSS_MB
        failed |= not ok
        print(
            f"store overhead, {dialect}: {options.alerts} instant checks, concurrency "
            f"{options.concurrency}, runs {', '.join(f'{w:.2f}s' for w in m['walls'])}"
        )
        print(
            f"  median {m['wall']:.2f}s = {m['per_alert_ms']:.3f} ms/alert "
            f"(target ≤ {target_ms} ms/alert = {floor:.1f}s; ratio to target "
            f"{m['per_alert_ms'] / target_ms:.2f}) {verdict(m['per_alert_ms'], target_ms)}"
        )
        print(
            f"  peak RSS {m['peak_rss_mb']:.0f} MB (after imports {m['rss_before_mb']:.0f} MB; "
            f"target ≤ {TARGET_RSS_MB} MB) {verdict(m['peak_rss_mb'], TARGET_RSS_MB)}"
        )
        print(
            f"  SQL statements per run: {m['statements']:.0f} "
            f"({m['statements'] / options.alerts:.3f} per alert)"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
