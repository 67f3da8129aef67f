#!/usr/bin/env bash
# Sets up .venv, loads a demo that needs no accounts (SQLite store and SQLite "warehouse" under
# .demo/), records a failing pipeline run, and runs the evaluator: the job cron runs every minute.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
alerts=.venv/bin/alerts

export DEMO_DIR="$PWD/.demo"
export ALERTS_DATABASE_URL="sqlite:///$DEMO_DIR/alerts.db"
rm -rf "$DEMO_DIR" && mkdir -p "$DEMO_DIR"

# A small warehouse whose orders were last loaded yesterday, two without a customer.
.venv/bin/python - "$DEMO_DIR/warehouse.db" <<'PY'
import sqlite3, sys
from datetime import UTC, datetime, timedelta
db = sqlite3.connect(sys.argv[1])
db.execute("create table orders (id integer primary key, customer_id integer, amount real,"
           " loaded_at timestamp)")
yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
db.executemany("insert into orders (customer_id, amount, loaded_at) values (?, ?, ?)",
               [(1, 10.5, yesterday), (None, 99.0, yesterday), (2, 5.0, yesterday),
                (None, 12.25, yesterday)])
db.commit()
PY

echo "== alerts sync examples/demo.yaml"
"$alerts" sync examples/demo.yaml
echo
echo "== alerts runs wrap nightly-etl -- (a job that fails)"
"$alerts" runs wrap nightly-etl -- sh -c 'echo "loading orders..."; echo "ERROR: disk full" >&2; exit 1' || true
echo
echo "== alerts evaluate   (what cron runs every minute)"
"$alerts" evaluate
echo
echo "== alerts list"
"$alerts" list
echo
echo "== alerts history"
"$alerts" history
echo
echo "Demo store: $ALERTS_DATABASE_URL  (try: DEMO_DIR=$DEMO_DIR ALERTS_DATABASE_URL=$ALERTS_DATABASE_URL $alerts history show 1)"
