"""Benchmark: peak memory of one `alerts evaluate` whose `sql` query returns 10,000,000 rows.

Per dialect (SQLite, PostgreSQL, MariaDB), an alert with `max_rows: 20` runs a query producing
--rows rows (a recursive CTE on SQLite, `generate_series` on PostgreSQL, the sequence engine's
`seq_1_to_N` on MariaDB, each row with a 40-character payload); beside it, the floor: the same
evaluation of a 1-row query. Each is `python -m datamantri_alerts evaluate --alert NAME` in a
fresh process, its peak RSS read from `os.wait4` (the child's own `ru_maxrss`), median of --runs.
Target: the big query costs at most 50 MB over the floor.

The store is a scratch SQLite file; the data sources are a SQLite file, a scratch schema in the
PostgreSQL server and the MariaDB `test` database on 127.0.0.1 (`ALERTS_BENCH_PG_URL`,
`ALERTS_BENCH_MARIADB_URL`). `--code DIR` runs another checkout's package (e.g. the code before
streaming) with the same interpreter, for a before/after comparison.

    .venv/bin/python benchmarks/sql_memory.py [--rows 10000000] [--runs 3] [--code DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml
from _common import PG_ADMIN_URL, median, verdict

MARIADB_URL = os.environ.get("ALERTS_BENCH_MARIADB_URL", "mysql+pymysql://root@127.0.0.1/test")
TARGET_OVER_FLOOR_MB = 50.0
ALERTS = (sys.executable, "-m", "datamantri_alerts")

#: N rows of (n, a 40-character payload); `{rows}` is filled in.
QUERIES = {
    "sqlite": (
        "with recursive c(n) as (select 1 union all select n + 1 from c where n < {rows}) "
        "select n, printf('%040d', n) as p from c"
    ),
    "postgresql": "select n, lpad(n::text, 40, '0') as p from generate_series(1, {rows}) as n",
    "mariadb": "select seq as n, lpad(seq, 40, '0') as p from seq_1_to_{rows}",
}


def _definitions(urls: dict[str, str], rows: int) -> dict[str, object]:
    alerts = []
    for dialect in urls:
        query = QUERIES[dialect].format(rows=rows)
        for name, text in ((f"big-{dialect}", query), (f"floor-{dialect}", "select 1 as n")):
            alerts.append(
                {
                    "name": name,
                    "condition_type": "sql",
                    "condition_config": {
                        "datasource_id": dialect,
                        "query": text,
                        "max_rows": 20,
                        "timeout_seconds": 600,
                    },
                }
            )
    return {
        "datasources": [{"id": d, "name": d, "url": url} for d, url in urls.items()],
        "alerts": alerts,
    }


def _run(store: str, alert: str, env: dict[str, str]) -> tuple[float, float, str]:
    """(peak RSS MB, wall seconds, last output line) of one `alerts evaluate --alert`."""
    started = time.monotonic()
    child = subprocess.Popen(
        [*ALERTS, "--db", store, "evaluate", "--alert", alert, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert child.stdout is not None
    output = child.stdout.read().decode(errors="replace")
    _, _, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    try:
        [result] = json.loads(output)["results"]
        shown = f"{result['outcome']}: {result['summary']}"
    except (ValueError, KeyError):
        shown = output.strip().splitlines()[-1] if output.strip() else "(no output)"
    return usage.ru_maxrss / 1024, wall, shown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--code", type=Path, default=None, help="checkout to import instead")
    parser.add_argument("--dialects", default="sqlite,postgresql,mariadb")
    options = parser.parse_args()
    env = dict(os.environ)
    if options.code is not None:
        env["PYTHONPATH"] = str(options.code.resolve())
    where = subprocess.run(
        [sys.executable, "-c", "import datamantri_alerts; print(datamantri_alerts.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"code under test: {where}; {options.rows:,} rows, max_rows 20, median of {options.runs}")

    from sqlalchemy import create_engine, text

    failed = False
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    pg_admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = Path(tmp) / "warehouse.db"
        import sqlite3

        sqlite3.connect(warehouse).close()
        urls = {
            "sqlite": f"sqlite:///{warehouse}",
            "postgresql": f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}",
            "mariadb": MARIADB_URL,
        }
        urls = {d: u for d, u in urls.items() if d in options.dialects.split(",")}
        store = f"sqlite:///{Path(tmp) / 'store.db'}"
        definitions = Path(tmp) / "alerts.yaml"
        definitions.write_text(yaml.safe_dump(_definitions(urls, options.rows)))
        with pg_admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            subprocess.run(
                [*ALERTS, "--db", store, "sync", str(definitions)],
                env=env,
                check=True,
                capture_output=True,
            )
            header = f"{'dialect':<11} {'floor MB':>9} {'big MB':>9} {'over':>8} {'wall s':>7}"
            print(f"{header}  outcome of the big query")
            for dialect in urls:
                floors, bigs, walls, last = [], [], [], ""
                for _ in range(options.runs):
                    floors.append(_run(store, f"floor-{dialect}", env)[0])
                    rss, wall, last = _run(store, f"big-{dialect}", env)
                    bigs.append(rss)
                    walls.append(wall)
                floor, big = median(floors), median(bigs)
                over = big - floor
                failed |= over > TARGET_OVER_FLOOR_MB
                print(
                    f"{dialect:<11} {floor:>9.1f} {big:>9.1f} {over:>8.1f} {median(walls):>7.2f}"
                    f"  {last[:90]}"
                )
                print(f"{'':<11} over the floor: {verdict(over, TARGET_OVER_FLOOR_MB)}")
        finally:
            with pg_admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            pg_admin.dispose()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
