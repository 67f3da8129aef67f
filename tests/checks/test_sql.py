"""sql: fires when the query returns rows; the first rows (bounded, JSON-safe) in the details."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.checks.conftest import Harness


def _seed(url: str, table: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, amount NUMERIC(10, 2), at DATE)")
        )
        for i in range(1, 31):
            conn.execute(
                text(f"INSERT INTO {table} VALUES (:id, :amount, :at)"),
                {"id": i, "amount": f"{i}.50", "at": f"2025-06-{i:02d}"},
            )
    engine.dispose()


def _sources(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'w.db'}"
    if kind == "postgres":
        return request.getfixturevalue("pg_url")
    return request.getfixturevalue("mariadb_database")


@pytest.mark.parametrize(
    "kind",
    [
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_rows_fire_with_bounded_json_safe_details(
    harness: Harness, request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    url = _sources(request, tmp_path, kind)
    table = f"payments_{uuid.uuid4().hex[:8]}"
    _seed(url, table)
    harness.add_datasource("wh", url)
    firing, quiet = harness.run_many(
        [
            (
                "sql",
                {
                    "datasource_id": "wh",
                    "query": f"SELECT id, amount, at FROM {table} WHERE amount > 10 ORDER BY id",
                    "max_rows": 5,
                },
            ),
            ("sql", {"datasource_id": "wh", "query": f"SELECT id FROM {table} WHERE id < 0"}),
        ]
    )
    assert firing.outcome == "firing", firing.summary
    assert firing.summary.endswith("returned 5+ rows")
    assert firing.details["truncated"] is True
    rows = firing.details["rows"]
    assert len(rows) == 5
    assert rows[0]["id"] == 10
    assert rows[0]["amount"] == 10.5
    assert str(rows[0]["at"]).startswith("2025-06-10")
    json.dumps(firing.details)  # storable as history as is
    assert quiet.outcome == "ok"
    assert quiet.details["rows"] == []


def test_exactly_max_rows_is_not_truncated(harness: Harness, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    _seed(url, "payments")
    harness.add_datasource("wh", url)
    result = harness.run(
        "sql",
        {"datasource_id": "wh", "query": "SELECT id FROM payments WHERE id <= 3", "max_rows": 3},
    )
    assert result.outcome == "firing"
    assert result.summary.endswith("returned 3 rows")
    assert result.details["truncated"] is False


def test_bad_query_is_an_error_with_the_database_message(harness: Harness, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    _seed(url, "payments")
    harness.add_datasource("wh", url)
    result = harness.run("sql", {"datasource_id": "wh", "query": "SELECT nope FROM payments"})
    assert result.outcome == "error"
    assert "no such column: nope" in result.summary
    assert result.severity == "warning"


def test_alert_severity_overrides_the_default(harness: Harness, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    _seed(url, "payments")
    harness.add_datasource("wh", url)
    result = harness.run("sql", {"datasource_id": "wh", "query": "SELECT 1"}, severity="critical")
    assert result.outcome == "firing"
    assert result.severity == "critical"


@pytest.mark.serial  # wall-clock bound: cancelled at its timeout
@pytest.mark.postgres
def test_postgres_query_is_cancelled_at_its_timeout(harness: Harness, pg_database: str) -> None:
    harness.add_datasource("pg", pg_database)
    result = harness.run(
        "sql",
        {"datasource_id": "pg", "query": "SELECT pg_sleep(5), 1", "timeout_seconds": 0.5},
    )
    assert result.outcome == "error"
    assert "statement timeout" in result.summary
    assert result.duration_ms < 2000


def test_a_huge_cell_is_clipped_in_the_details(harness: Harness, tmp_path: Path) -> None:
    """A 2 MB value (text and blob) is kept as its first VALUE_LIMIT characters: history,
    notifications and the redactor see no more (redacting 1 MB used to take minutes)."""
    from datamantri_alerts.checks.values import VALUE_LIMIT

    url = f"sqlite:///{tmp_path / 'w.db'}"
    _seed(url, "payments")
    harness.add_datasource("wh", url)
    result = harness.run(
        "sql",
        {
            "datasource_id": "wh",
            "query": "SELECT hex(zeroblob(1000000)) AS big, zeroblob(2000000) AS raw, "
            "'short' AS small, 'https://hooks.example/' || hex(zeroblob(100000)) AS link",
        },
    )
    assert result.outcome == "firing", result.summary
    [row] = result.details["rows"]
    assert len(row["big"]) == VALUE_LIMIT and row["big"].endswith("…")
    assert row["big"].startswith("0000")
    assert len(row["raw"]) <= VALUE_LIMIT + 10  # base64 of the first 1024 bytes at most
    assert row["small"] == "short"
    assert len(row["link"]) == VALUE_LIMIT
