"""`alerts evaluate --dry-run`: what each due alert's check sees, sending and writing nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.checks import servers
from tests.conftest import Cli, dump_store

RESULT_KEYS = {
    "id",
    "name",
    "condition_type",
    "outcome",
    "state",
    "severity",
    "summary",
    "duration_ms",
}


def _sync(cli: Cli, tmp_path: Path, document: dict[str, Any]) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump(document))
    result = cli("sync", str(path))
    assert result.exit_code == 0, result.output


def _update_alert(sqlite_url: str, name: str, **fields: Any) -> None:
    from sqlalchemy import select

    from datamantri_alerts.store.engine import open_store
    from datamantri_alerts.store.models import Alert

    store = open_store(sqlite_url)
    try:
        with store.transaction() as session:
            alert = session.scalars(select(Alert).where(Alert.name == name)).one()
            for key, value in fields.items():
                setattr(alert, key, value)
    finally:
        store.dispose()


def _alert(name: str, condition_type: str, **config: Any) -> dict[str, Any]:
    return {"name": name, "condition_type": condition_type, "condition_config": config}


@pytest.fixture
def web() -> Any:
    with servers.http_server() as base:
        yield base


def test_dry_run_reports_and_writes_nothing(
    cli: Cli, sqlite_url: str, tmp_path: Path, web: str
) -> None:
    refused = servers.closed_port()
    _sync(
        cli,
        tmp_path,
        {
            "datasources": [
                {"id": "web", "name": "Web", "url": f"{web}/health"},
                {
                    "id": "down",
                    "name": "Down",
                    "url": f"postgresql://u:pw1234@127.0.0.1:{refused}/x",
                },
            ],
            "alerts": [
                _alert("web up", "datasource_failure", datasource_id="web"),
                _alert(
                    "down twice",
                    "datasource_failure",
                    datasource_id="down",
                    failures_before_alert=2,
                ),
            ],
        },
    )
    _update_alert(sqlite_url, "down twice", check_state={"consecutive_failures": 1})
    before = dump_store(sqlite_url)

    report = cli("evaluate", "--dry-run", "--json")
    assert report.exit_code == 0, report.output
    data = report.json()
    assert data["evaluated"] == 2
    assert data["notifications"] == {"sent": 0, "failed": 0, "pending": 0, "suppressed": 0}
    by_name = {r["name"]: r for r in data["results"]}
    assert set(by_name["web up"]) >= RESULT_KEYS
    assert by_name["web up"]["outcome"] == "ok"
    assert by_name["web up"]["state"] == "ok"
    # The stored count (1) plus this failure reaches failures_before_alert=2.
    assert by_name["down twice"]["outcome"] == "firing"
    assert by_name["down twice"]["severity"] == "critical"
    assert "pw1234" not in report.stdout

    table = cli("evaluate", "--dry-run", env={"COLUMNS": "200"})
    assert table.exit_code == 0
    for header in ("Alert", "Type", "Outcome", "Severity", "Duration"):
        assert header in table.stdout
    assert "firing" in table.stdout
    # Each summary is shown whole (on its own line when it does not fit as a column).
    # (the timing in a summary differs between the two runs: compared up to it)
    for row in report.json()["results"]:
        words = row["summary"].split()[:4]
        assert " ".join(words) in " ".join(table.stdout.split())

    assert dump_store(sqlite_url) == before


def test_due_selection_all_and_one_alert(
    cli: Cli, sqlite_url: str, tmp_path: Path, web: str
) -> None:
    _sync(
        cli,
        tmp_path,
        {
            "datasources": [{"id": "web", "name": "Web", "url": f"{web}/health"}],
            "alerts": [
                _alert(
                    "fresh", "datasource_failure", datasource_id="web", check_interval_minutes=5
                ),
                _alert(
                    "stale", "datasource_failure", datasource_id="web", check_interval_minutes=5
                ),
                _alert("new", "datasource_failure", datasource_id="web"),
                {**_alert("off", "datasource_failure", datasource_id="web"), "is_active": False},
                _alert("scheduled", "datasource_failure", datasource_id="web"),
            ],
        },
    )
    now = datetime.now(UTC)
    # As the evaluator leaves them: next_due_at = last evaluation + check_interval_minutes.
    _update_alert(
        sqlite_url,
        "fresh",
        last_evaluated_at=now - timedelta(minutes=1),
        next_due_at=now + timedelta(minutes=4),
    )
    _update_alert(
        sqlite_url,
        "stale",
        last_evaluated_at=now - timedelta(minutes=6),
        next_due_at=now - timedelta(minutes=1),
    )
    _update_alert(sqlite_url, "off", last_evaluated_at=None)
    _update_alert(
        sqlite_url,
        "scheduled",
        next_due_at=now + timedelta(minutes=3),
        last_evaluated_at=now - timedelta(hours=1),
    )

    def names(*args: str) -> list[str]:
        result = cli("evaluate", "--dry-run", "--json", *args)
        assert result.exit_code == 0, result.output
        return sorted(r["name"] for r in result.json()["results"])

    assert names() == ["new", "stale"]
    assert names("--all") == ["fresh", "new", "scheduled", "stale"]
    assert names("--alert", "off") == ["off"]
    assert names("--alert", "fresh") == ["fresh"]

    unknown = cli("evaluate", "--dry-run", "--alert", "nope")
    assert unknown.exit_code == 2
    assert "nope" in unknown.stderr


@pytest.mark.serial  # wall-clock bound: a black hole does not delay
def test_black_hole_does_not_delay_the_other_alerts(cli: Cli, tmp_path: Path, web: str) -> None:
    with servers.black_hole() as port:
        _sync(
            cli,
            tmp_path,
            {
                "datasources": [
                    {"id": "web", "name": "Web", "url": f"{web}/sleep?ms=100"},
                    {"id": "hole", "name": "Hole", "url": f"postgresql://u@127.0.0.1:{port}/x"},
                ],
                "alerts": [
                    _alert("hole", "datasource_failure", datasource_id="hole", timeout_seconds=1),
                    *[
                        _alert(f"web {i}", "datasource_failure", datasource_id="web")
                        for i in range(20)
                    ],
                ],
            },
        )
        started = time.monotonic()
        report = cli("evaluate", "--dry-run", "--json", "--concurrency", "4")
        elapsed = time.monotonic() - started
    results = {r["name"]: r for r in report.json()["results"]}
    assert results["hole"]["outcome"] in ("firing", "error")
    assert "time" in results["hole"]["summary"].lower()
    assert all(results[f"web {i}"]["outcome"] == "ok" for i in range(20))
    assert elapsed < 3.5, elapsed
    assert max(results[f"web {i}"]["duration_ms"] for i in range(20)) < 1000


def test_an_error_outcome_exits_1(cli: Cli, tmp_path: Path) -> None:
    _sync(
        cli,
        tmp_path,
        {
            "datasources": [{"id": "env", "name": "Env", "url": "${UNSET_SOURCE_URL_X}"}],
            "alerts": [_alert("sql", "sql", datasource_id="env", query="select 1")],
        },
    )
    result = cli("evaluate", "--dry-run", "--json")
    assert result.exit_code == 1
    [row] = result.json()["results"]
    assert row["outcome"] == "error"
    assert row["state"] == "error"
    assert "UNSET_SOURCE_URL_X" in row["summary"]
    quiet = cli("evaluate", "--dry-run", "--quiet")
    assert quiet.exit_code == 1
    assert "UNSET_SOURCE_URL_X" in quiet.stdout


def test_nothing_due_and_bad_concurrency(cli: Cli) -> None:
    empty = cli("evaluate", "--dry-run")
    assert empty.exit_code == 0
    assert "no alerts are due" in empty.stdout
    assert cli("evaluate", "--dry-run", "--json").json()["evaluated"] == 0

    assert cli("evaluate", "--dry-run", "--concurrency", "0").exit_code == 2
