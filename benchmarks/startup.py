"""Benchmark: start-up — `alerts --help` and `alerts list` over 1,000 alerts, beside the floors.

Every command is a fresh process, run --runs times interleaved (so background load hits all of
them alike) after one warm-up each (warm disk cache); the median is reported. Reference points
measured in the same run: `python -c pass`, `python -c "import typer"`, and
`python -c "import typer, sqlalchemy.orm"` (what any command that reads the store through
SQLAlchemy's ORM must import). Targets: `--help` ≤ 150 ms, `list` ≤ 350 ms, and (issue 12)
`list` ≤ 1.3 times `import typer, sqlalchemy.orm` measured in the same run.

    .venv/bin/python benchmarks/startup.py [--alerts 1000] [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import insert_alerts, median, verdict

TARGETS = {"alerts --help": 0.150, "alerts list": 0.350}
#: `alerts list` against `python -c "import typer, sqlalchemy.orm"` in the same run (issue 12).
ORM_RATIO_TARGET = 1.3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15)
    options = parser.parse_args()
    python = sys.executable
    alerts = str(Path(python).with_name("alerts"))

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'startup.db'}"
        insert_alerts(
            url,
            options.alerts,
            condition_type="datasource_failure",
            config={"datasource_id": "warehouse"},
            channels=["email", "slack"],
            recipients={"email": ["data@example.com"], "slack": "${SLACK_WEBHOOK_URL}"},
            datasources=[{"id": "warehouse", "name": "Warehouse", "url": "sqlite:///w.db"}],
        )
        env = {**os.environ, "ALERTS_DATABASE_URL": url, "COLUMNS": "160"}
        commands = {
            "python -c pass": [python, "-c", "pass"],
            "python -c 'import typer'": [python, "-c", "import typer"],
            "python -c 'import typer, sqlalchemy.orm'": [
                python,
                "-c",
                "import typer, sqlalchemy.orm",
            ],
            "alerts --help": [alerts, "--help"],
            "alerts list": [alerts, "list"],
        }
        timings: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(options.runs + 1):
            for name, argv in commands.items():
                started = time.perf_counter()
                done = subprocess.run(argv, env=env, capture_output=True, timeout=60, cwd=tmp)
                elapsed = time.perf_counter() - started
                if done.returncode != 0:
                    raise SystemExit(f"{name} failed: {done.stderr.decode()}")
                if name == "alerts list" and f"{options.alerts} alerts" not in done.stdout.decode():
                    raise SystemExit("alerts list did not list every alert")
                if round_:  # the first round only warms the disk cache
                    timings[name].append(elapsed)

    print(f"start-up, median of {options.runs} runs (fresh process each; {options.alerts} alerts)")
    failed = False
    floor = median(timings["python -c 'import typer'"])
    for name, values in timings.items():
        m = median(values)
        line = f"  {name:<42} {m * 1000:6.0f} ms"
        if name in TARGETS:
            target = TARGETS[name]
            failed |= m > target
            line += (
                f"   target ≤ {target * 1000:.0f} ms {verdict(m, target)}; "
                f"{m / floor:.1f}x `import typer`"
            )
        print(line)
    orm_floor = median(timings["python -c 'import typer, sqlalchemy.orm'"])
    ratio = median(timings["alerts list"]) / orm_floor
    failed |= ratio > ORM_RATIO_TARGET
    print(
        f"  alerts list / import typer, sqlalchemy.orm  {ratio:.2f}x   target ≤ "
        f"{ORM_RATIO_TARGET}x {verdict(ratio, ORM_RATIO_TARGET)}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
