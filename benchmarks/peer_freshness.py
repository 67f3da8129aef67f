"""Freshness of N PostgreSQL tables: `alerts evaluate --all` against the psycopg floor and dbt.

    .venv/bin/python benchmarks/peer_freshness.py [--n 1000] [--rounds 5] [--concurrency 16]
        [--dbt-venv /path/to/venv]

Builds a scratch PostgreSQL database with N tables `t_00000 ... (id, loaded_at timestamptz)`,
one row each; every 10th table is stale (i % 20 == 0: 2 days old, past error_after 24 h;
i % 20 == 10: 13 h old, past warn_after 12 h only), the rest 10 minutes old. Then, interleaved
over `--rounds` rounds, each as a fresh process (start-up included, as a cron run pays it):

- `alerts evaluate --all --json` with one `freshness` alert per table (warn 12 h, error 24 h);
- the same with one `sql` alert per table (`... having max(loaded_at) < now() - 12 h`);
- the floor: a plain psycopg script, `--concurrency` threads with one connection each, the same
  N `select max(loaded_at)` queries;
- `dbt source freshness --threads <concurrency>` on a generated project declaring the same
  tables with the same thresholds, when `--dbt-venv` names a venv with
  `dbt-core==1.11.* dbt-postgres==1.11.*` (`python3 -m venv V && V/bin/pip install ...`;
  1.12 does not install offline).

Prints the median wall time of each, the ratios product/floor and dbt/product, the PostgreSQL
sessions a product run opened on the warehouse (`pg_stat_database.sessions`, counted by the
server), and whether the freshness alerts found the same tables stale with the same severities
as expected (and as dbt, when it ran). Exits 1 when a target is missed (issue 12: N = 1,000:
product <= 3x the floor and >= 8x faster than dbt; N = 5,000: <= 2x the floor; sessions <=
concurrency). Everything runs on 127.0.0.1 and is dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_ROOT, median, scratch_url, verdict

WARN_HOURS, ERROR_HOURS = 12, 24

FLOOR_SCRIPT = """
import sys, threading, psycopg
url, n, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names = [f"t_{i:05d}" for i in range(n)]
results = {}
def work(part):
    with psycopg.connect(url, autocommit=True) as conn:
        for name in part:
            results[name] = conn.execute(f"select max(loaded_at) from {name}").fetchone()[0]
parts = [names[k::threads] for k in range(threads)]
workers = [threading.Thread(target=work, args=(p,)) for p in parts]
for w in workers: w.start()
for w in workers: w.join()
assert len(results) == n
"""


def expected_status(i: int) -> str:
    """dbt's word for table i: error, warn or pass."""
    return {0: "error", 10: "warn"}.get(i % 20, "pass")


def build_warehouse(url: str, n: int) -> None:
    from sqlalchemy import create_engine

    ages = {"error": "2 days", "warn": "13 hours", "pass": "10 minutes"}
    statements = []
    for i in range(n):
        name = f"t_{i:05d}"
        statements.append(f"create table {name} (id int, loaded_at timestamptz)")
        age = ages[expected_status(i)]
        statements.append(f"insert into {name} values (1, now() - interval '{age}')")
    engine = create_engine(url)
    with engine.begin() as conn:
        for start in range(0, len(statements), 500):
            conn.exec_driver_sql(";\n".join(statements[start : start + 500]))
    engine.dispose()


def alerts_yaml(n: int, kind: str) -> str:
    alerts = []
    for i in range(n):
        name = f"t_{i:05d}"
        if kind == "freshness":
            config: dict[str, Any] = {
                "datasource_id": "wh",
                "table": name,
                "timestamp_column": "loaded_at",
                "warn_after": {"count": WARN_HOURS, "period": "hour"},
                "error_after": {"count": ERROR_HOURS, "period": "hour"},
            }
        else:
            config = {
                "datasource_id": "wh",
                "query": f"select max(loaded_at) from {name} "
                f"having max(loaded_at) < now() - interval '{WARN_HOURS} hours'",
            }
        alerts.append(
            {"name": f"{kind} {name}", "condition_type": kind, "condition_config": config}
        )
    document = {"datasources": [{"id": "wh", "name": "W", "url": "${BENCH_WAREHOUSE_URL}"}]}
    return json.dumps({**document, "alerts": alerts})


def alerts_cmd(store: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "datamantri_alerts", "--db", store, *args]


def dbt_project(root: Path, url: str, n: int) -> None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(
        "name: bench\nversion: '1.0'\nconfig-version: 2\nprofile: bench\n"
    )
    (root / "profiles.yml").write_text(
        textwrap.dedent(
            f"""\
            bench:
              target: dev
              outputs:
                dev: {{type: postgres, host: 127.0.0.1, port: {parsed.port or 5432},
                       user: {parsed.username}, password: "", dbname: {parsed.database},
                       schema: public, threads: 16}}
            """
        )
    )
    tables = "\n".join(f"      - name: t_{i:05d}" for i in range(n))
    (root / "models" / "sources.yml").write_text(
        "version: 2\nsources:\n  - name: bench\n    schema: public\n"
        "    loaded_at_field: loaded_at\n"
        f"    freshness: {{warn_after: {{count: {WARN_HOURS}, period: hour}}, "
        f"error_after: {{count: {ERROR_HOURS}, period: hour}}}}\n"
        f"    tables:\n{tables}\n"
    )


def sessions(admin_url: str, database: str) -> int:
    from sqlalchemy import create_engine, text

    time.sleep(1.5)  # backends report their session counts when they end
    engine = create_engine(admin_url)
    with engine.connect() as conn:
        value = conn.execute(
            text("select sessions from pg_stat_database where datname = :d"), {"d": database}
        ).scalar()
    engine.dispose()
    return int(value or 0)


def timed_run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=1800)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-2000:])
        raise SystemExit(f"{cmd[:4]} failed with exit {done.returncode}")
    return elapsed, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--dbt-venv", type=Path, default=None)
    options = parser.parse_args()
    n, concurrency = options.n, options.concurrency
    from _common import PG_ADMIN_URL

    with tempfile.TemporaryDirectory() as tmp_name, scratch_url("postgres", Path(tmp_name)) as wh:
        tmp = Path(tmp_name)
        database = wh.rsplit("/", 1)[1]
        build_warehouse(wh, n)
        env = {**os.environ, "BENCH_WAREHOUSE_URL": wh, "PYTHONPATH": str(REPO_ROOT)}
        stores = {}
        for kind in ("freshness", "sql"):
            stores[kind] = f"sqlite:///{tmp / f'{kind}.db'}"
            path = tmp / f"{kind}.json"
            path.write_text(alerts_yaml(n, kind))
            subprocess.run(
                alerts_cmd(stores[kind], "sync", str(path)),
                env=env,
                check=True,
                capture_output=True,
            )
        psycopg_url = wh.replace("postgresql+psycopg://", "postgresql://")
        dbt = options.dbt_venv / "bin" / "dbt" if options.dbt_venv else None
        if dbt is not None:
            dbt_project(tmp / "dbt", wh, n)

        times: dict[str, list[float]] = {"freshness": [], "sql": [], "floor": [], "dbt": []}
        session_counts: list[int] = []
        last_json: Any = None
        dbt_results: Any = None
        evaluate = ("evaluate", "--all", "--json", "--concurrency", str(concurrency))
        for round_no in range(options.rounds):
            before = sessions(PG_ADMIN_URL, database)
            elapsed, out = timed_run(alerts_cmd(stores["freshness"], *evaluate), env)
            session_counts.append(sessions(PG_ADMIN_URL, database) - before)
            times["freshness"].append(elapsed)
            last_json = json.loads(out)
            times["sql"].append(timed_run(alerts_cmd(stores["sql"], *evaluate), env)[0])
            floor_cmd = [sys.executable, "-c", FLOOR_SCRIPT, psycopg_url, str(n), str(concurrency)]
            times["floor"].append(timed_run(floor_cmd, env)[0])
            if dbt is not None:
                dbt_cmd = [
                    str(dbt),
                    "source",
                    "freshness",
                    "--profiles-dir",
                    ".",
                    "--threads",
                    str(concurrency),
                    "--quiet",
                ]
                times["dbt"].append(timed_run(dbt_cmd, env, cwd=tmp / "dbt")[0])
                dbt_results = json.loads((tmp / "dbt" / "target" / "sources.json").read_text())
            print(
                f"round {round_no + 1}: "
                + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items() if v),
                flush=True,
            )

    ours = {r["name"].split(" ", 1)[1]: r for r in last_json["results"]}
    words = {"error": ("firing", "critical"), "warn": ("firing", "warning"), "pass": ("ok", None)}
    mismatches = []
    for i in range(n):
        name = f"t_{i:05d}"
        outcome, severity = words[expected_status(i)]
        got = ours[name]
        if got["outcome"] != outcome or (severity and got["severity"] != severity):
            mismatches.append(name)
    if dbt_results is not None:
        for item in dbt_results["results"]:
            name = item["unique_id"].rsplit(".", 1)[1]
            if item["status"] != expected_status(int(name[2:])):
                mismatches.append(f"dbt:{name}")

    product, floor, sql = median(times["freshness"]), median(times["floor"]), median(times["sql"])
    ok = True
    print(f"\nN = {n}, concurrency {concurrency}, {options.rounds} rounds, medians:")
    print(f"  alerts evaluate (freshness) {product:.2f} s; (sql) {sql:.2f} s; floor {floor:.2f} s")
    target = 3.0 if n <= 1000 else 2.0
    ratio = product / floor
    print(f"  product/floor {ratio:.1f}x (target <= {target:g}x): {verdict(ratio, target)}")
    ok &= ratio <= target
    if times["dbt"]:
        dbt_time = median(times["dbt"])
        speedup = dbt_time / product
        print(
            f"  dbt source freshness {dbt_time:.2f} s; dbt/product {speedup:.1f}x (target >= 8x): "
            f"{'PASS' if speedup >= 8 else 'FAIL'}"
        )
        ok &= speedup >= 8 or n > 1000
    worst = max(session_counts)
    print(
        f"  PostgreSQL sessions per run: {session_counts} (target <= {concurrency}): "
        f"{verdict(worst, concurrency)}"
    )
    ok &= worst <= concurrency
    print(
        f"  same stale tables and severities as expected{' and dbt' if dbt_results else ''}: "
        f"{'yes' if not mismatches else 'NO: ' + ', '.join(mismatches[:10])}"
    )
    ok &= not mismatches
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
