"""Benchmark: history at scale — 1,000,000 episodes; list, filter, prune.

Setup (not measured): 1,000 alerts and 1,000,000 closed episodes spread over them; 900,000 were
triggered 100-500 days ago, 100,000 in the last 90 days (10 a day per alert on average over the
last week... spread evenly), each with a small details document and one delivery entry.

Figures, median of --runs:
- `alerts history --limit 50` and `alerts history --alert REF --since 7d`: the command's own time
  in a warm process (typer invocation, store query, table) against the 300 ms target, and the
  same command as a fresh process (start-up included; see startup.py for that floor);
- `alerts history prune --older-than 90d` deleting the 900,000 old episodes: wall time and the
  child's peak RSS (bounded: it deletes in batches, so memory does not grow with the rows).

    .venv/bin/python benchmarks/history_scale.py [--rows 1000000] [--old 900000] [--runs 5] \
        [--dialect sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import insert_alerts, median, scratch_url, verdict

TARGET_QUERY = 0.300
ALERTS = 1000


def fill_history(url: str, rows: int, old: int) -> None:
    from sqlalchemy import insert

    from datamantri_alerts.store.engine import open_store
    from datamantri_alerts.store.models import AlertHistory

    now = datetime.now(UTC)
    store = open_store(url)
    try:
        chunk: list[dict[str, object]] = []
        for i in range(rows):
            if i < old:  # 100-500 days ago
                at = now - timedelta(days=100, seconds=(i * 34_560) % (400 * 86_400))
            else:  # the last 90 days
                at = now - timedelta(seconds=((i - old) * 77_760) % (90 * 86_400))
            alert_id = i % ALERTS + 1
            chunk.append(
                {
                    "alert_id": alert_id,
                    "alert_name": f"bench alert {alert_id - 1:06d}",
                    "triggered_at": at,
                    "condition_met": True,
                    "kind": "firing",
                    "severity": "warning",
                    "summary": "the benchmark says so",
                    "details": {"rows": 1},
                    "notifications_sent": [{"channel": "slack", "status": "sent"}],
                    "notification_errors": [],
                    "resolved_at": at + timedelta(minutes=5),
                }
            )
            if len(chunk) == 20_000:
                with store.transaction() as session:
                    session.execute(insert(AlertHistory), chunk)
                chunk = []
        if chunk:
            with store.transaction() as session:
                session.execute(insert(AlertHistory), chunk)
    finally:
        store.dispose()


def in_process(url: str, args: list[str], runs: int) -> list[float]:
    """The command's own time: a warm process invoking the Typer app (imports already paid)."""
    from typer.testing import CliRunner

    from datamantri_alerts.cli import app

    runner = CliRunner()
    timings = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        result = runner.invoke(app, ["--db", url, *args])
        elapsed = time.perf_counter() - started
        if result.exit_code != 0:
            raise SystemExit(f"{args} failed: {result.output}")
        timings.append(elapsed)
    return timings[1:]  # the first run also opens files and fills caches


def as_process(url: str, args: list[str], runs: int) -> list[float]:
    alerts = str(Path(sys.executable).with_name("alerts"))
    env = {**os.environ, "ALERTS_DATABASE_URL": url, "COLUMNS": "160"}
    timings = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        subprocess.run([alerts, *args], env=env, check=True, capture_output=True, timeout=120)
        timings.append(time.perf_counter() - started)
    return timings[1:]


def prune_in_child(url: str) -> tuple[float, float, str]:
    alerts = str(Path(sys.executable).with_name("alerts"))
    env = {**os.environ, "ALERTS_DATABASE_URL": url}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [alerts, "history", "prune", "--older-than", "90d", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"prune failed: {out}")
    return elapsed, usage.ru_maxrss / 1024, out.strip().replace("\n", " ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--old", type=int, default=900_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dialect", choices=["sqlite", "postgresql"], default="sqlite")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, scratch_url(options.dialect, Path(tmp)) as url:
        started = time.perf_counter()
        insert_alerts(url, ALERTS, condition_type="instant", config={})
        fill_history(url, options.rows, options.old)
        print(
            f"history at scale, {options.dialect}: {options.rows:,} episodes over {ALERTS} "
            f"alerts (setup {time.perf_counter() - started:.0f}s, not measured)"
        )
        failed = False
        queries = {
            "history --limit 50": ["history", "--limit", "50"],
            "history --alert REF --since 7d": ["history", "--alert", "7", "--since", "7d"],
        }
        for name, args in queries.items():
            warm = median(in_process(url, args, options.runs))
            cold = median(as_process(url, args, options.runs))
            failed |= warm > TARGET_QUERY
            print(
                f"  {name:<32} command {warm * 1000:5.0f} ms (target ≤ "
                f"{TARGET_QUERY * 1000:.0f} ms) {verdict(warm, TARGET_QUERY)}; "
                f"as a fresh process {cold * 1000:.0f} ms"
            )
        elapsed, peak, out = prune_in_child(url)
        print(
            f"  history prune --older-than 90d: {elapsed:.1f}s, peak RSS {peak:.0f} MB "
            f"(bounded: batches of 500 per transaction); {out}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
