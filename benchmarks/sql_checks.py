"""Benchmark: `sql` alerts at the speed of the database (issue 12, items 1-2).

Two figures, each `alerts evaluate --all` as a whole process (`python -m datamantri_alerts`,
start-up included) over a SQLite store:

- `--backend postgresql`: N tables in a scratch PostgreSQL database (every 10th stale), one
  freshness-style `sql` alert per table (`SELECT max(loaded_at) ... HAVING max(loaded_at) <
  now() - interval '1 hour'`: a row means stale). The floor is a plain psycopg script in its own
  process: C threads with one connection each, the same N queries. Targets: product ≤ 3x floor
  at N=1,000, ≤ 2x at N=5,000; sessions opened on the data database per run ≤ C (counted on the
  server: `pg_stat_database.sessions` before and after). The rounds are interleaved (product,
  floor, product, ...) so both see the same machine load.
- `--backend sqlite`: N `sql` alerts on one SQLite data source file; target ≤ 1.0 ms per alert.

    .venv/bin/python benchmarks/sql_checks.py --backend postgresql [--tables 1000] [--rounds 5]
    .venv/bin/python benchmarks/sql_checks.py --backend sqlite [--alerts 2000] [--rounds 5]

Add `--profile` to write a pyinstrument profile of one product run (`pip install pyinstrument`).
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _common import PG_ADMIN_URL, REPO_ROOT, insert_alerts, median, verdict

STALE_EVERY = 10
PG_QUERY = (
    'SELECT max(loaded_at) AS newest FROM "{table}" '
    "HAVING max(loaded_at) < now() - interval '1 hour'"
)
SQLITE_QUERY = "SELECT id FROM readings WHERE id = {i} AND value > 100"

FLOOR_SCRIPT = """
import sys, threading, time, psycopg
dsn, queries, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
work = open(queries).read().split("\\n")
started = time.perf_counter()
chunks = [work[i::threads] for i in range(threads)]
stale = []
def run(chunk):
    with psycopg.connect(dsn) as conn:
        for q in chunk:
            if conn.execute(q).fetchall():
                stale.append(q)
            conn.rollback()
ts = [threading.Thread(target=run, args=(c,)) for c in chunks]
for t in ts: t.start()
for t in ts: t.join()
print(len(stale), time.perf_counter() - started)
"""


def _libpq_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextmanager
def pg_tables(count: int) -> Iterator[str]:
    """A scratch database with `count` tables t_00000.. (every STALE_EVERY-th stale)."""
    import psycopg

    admin = _libpq_dsn(PG_ADMIN_URL)
    name = f"alerts_bench_sql_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        with psycopg.connect(_libpq_dsn(url)) as conn:
            for i in range(count):
                age = "3 hours" if i % STALE_EVERY == 0 else "5 minutes"
                conn.execute(f'CREATE TABLE "t_{i:05d}" (id int, loaded_at timestamptz)')
                conn.execute(
                    f"INSERT INTO \"t_{i:05d}\" SELECT g, now() - interval '{age}' "
                    "FROM generate_series(1, 10) g"
                )
            conn.commit()
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def pg_sessions(url: str) -> int:
    """Sessions established to the database so far (server-side counter, PostgreSQL ≥ 14)."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(_libpq_dsn(PG_ADMIN_URL), autocommit=True) as conn:
        for _ in range(20):  # the counter is flushed by each backend shortly after it ends
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT sessions, numbackends FROM pg_stat_database WHERE datname = %s", (name,)
            ).fetchone()
            assert row is not None
            if row[1] == 0:
                return int(row[0])
            time.sleep(0.1)
        return int(row[0])


def command_tail(concurrency: int) -> list[str]:
    evaluate = ["evaluate", "--all", "--quiet", "--concurrency", str(concurrency)]
    return ["-m", "datamantri_alerts", *evaluate]


def child_cpu() -> float:
    """CPU seconds (user + system) of every finished child process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_product(store_url: str, concurrency: int, profile: Path | None = None) -> float:
    env = {**os.environ, "ALERTS_DATABASE_URL": store_url, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, *command_tail(concurrency)]
    if profile is not None:
        command = [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(profile)]
        command += command_tail(concurrency)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0,):
        raise SystemExit(f"evaluate failed ({done.returncode}): {done.stdout}{done.stderr}")
    return elapsed


def stale_alerts(store_url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(store_url)
    with engine.connect() as conn:
        value = conn.execute(text("SELECT count(*) FROM alerts WHERE state = 'firing'")).scalar()
    engine.dispose()
    return int(value or 0)


def bench_postgresql(options: argparse.Namespace) -> bool:
    n, c = options.tables, options.concurrency
    with tempfile.TemporaryDirectory() as tmp, pg_tables(n) as data_url:
        store_url = f"sqlite:///{Path(tmp) / 'store.db'}"
        queries = [PG_QUERY.format(table=f"t_{i:05d}") for i in range(n)]
        insert_alerts(
            store_url,
            n,
            condition_type="sql",
            config=lambda i: {"datasource_id": "warehouse", "query": queries[i]},
            datasources=[{"id": "warehouse", "name": "warehouse", "url": data_url}],
        )
        query_file = Path(tmp) / "queries.sql"
        query_file.write_text("\n".join(queries))
        script = Path(tmp) / "floor.py"
        script.write_text(FLOOR_SCRIPT)
        product, floor, sessions, product_cpu, floor_cpu = [], [], [], [], []
        for round_ in range(options.rounds):
            before = pg_sessions(data_url)
            profile = Path(options.profile) if options.profile and round_ == 0 else None
            cpu = child_cpu()
            product.append(run_product(store_url, c, profile))
            product_cpu.append(child_cpu() - cpu)
            sessions.append(pg_sessions(data_url) - before)
            cpu = child_cpu()
            started = time.perf_counter()
            out = subprocess.run(
                [sys.executable, str(script), _libpq_dsn(data_url), str(query_file), str(c)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            floor.append(time.perf_counter() - started)
            floor_cpu.append(child_cpu() - cpu)
            if int(out[0]) != n // STALE_EVERY + (1 if n % STALE_EVERY else 0):
                raise SystemExit(f"floor found {out[0]} stale tables")
        firing = stale_alerts(store_url)
    expected = len(range(0, n, STALE_EVERY))
    target = 3.0 if n <= 1000 else 2.0
    ratio = median(product) / median(floor)
    print(f"sql alerts on PostgreSQL: N={n} tables, concurrency {c}, {options.rounds} rounds")
    print(f"  product (alerts evaluate --all): median {median(product):.2f}s  {_runs(product)}")
    print(f"  floor (psycopg, {c} threads):      median {median(floor):.2f}s  {_runs(floor)}")
    print(
        f"  client CPU (user+sys) median: product {median(product_cpu):.2f}s, "
        f"floor {median(floor_cpu):.2f}s"
    )
    print(f"  ratio product/floor {ratio:.2f} (target ≤ {target:g}) {verdict(ratio, target)}")
    print(
        f"  sessions per run on the data database: {sorted(sessions)} "
        f"(target ≤ {c}) {verdict(max(sessions), c)}"
    )
    print(f"  firing alerts {firing}, stale tables {expected} {verdict(abs(firing - expected), 0)}")
    return ratio <= target and max(sessions) <= c and firing == expected


def bench_sqlite(options: argparse.Namespace) -> bool:
    n, c = options.alerts, options.concurrency
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.db"
        with sqlite3.connect(data) as conn:
            conn.execute("CREATE TABLE readings (id INTEGER PRIMARY KEY, value REAL)")
            conn.executemany(
                "INSERT INTO readings VALUES (?, ?)",
                [(i, 200.0 if i % STALE_EVERY == 0 else 1.0) for i in range(n)],
            )
        store_url = f"sqlite:///{Path(tmp) / 'store.db'}"
        insert_alerts(
            store_url,
            n,
            condition_type="sql",
            config=lambda i: {"datasource_id": "warehouse", "query": SQLITE_QUERY.format(i=i)},
            datasources=[{"id": "warehouse", "name": "warehouse", "url": f"sqlite:///{data}"}],
        )
        walls, cpus = [], []
        for round_ in range(options.rounds):
            profile = Path(options.profile) if options.profile and round_ == 0 else None
            cpu = child_cpu()
            walls.append(run_product(store_url, c, profile))
            cpus.append(child_cpu() - cpu)
        firing = stale_alerts(store_url)
    per_alert = median(walls) / n * 1000
    expected = len(range(0, n, STALE_EVERY))
    print(f"sql alerts on SQLite: N={n}, concurrency {c}, {options.rounds} rounds, whole process")
    print(f"  median {median(walls):.2f}s  {_runs(walls)}; CPU (user+sys) {median(cpus):.2f}s")
    print(f"  {per_alert:.3f} ms per alert (target ≤ 1.0) {verdict(per_alert, 1.0)}")
    print(f"  firing alerts {firing}, expected {expected} {verdict(abs(firing - expected), 0)}")
    return per_alert <= 1.0 and firing == expected


def _runs(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in values) + ")"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--profile", help="write a pyinstrument HTML/text profile of round 1")
    options = parser.parse_args()
    ok = bench_postgresql(options) if options.backend == "postgresql" else bench_sqlite(options)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
