"""Bad input: one line naming the field and the problem, exit 2, no traceback, nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, dump_store


def _alert(**overrides: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "name": "Good alert",
        "condition_type": "pipeline_failure",
        "condition_config": {"pipeline_id": "p1"},
        "channels": ["email"],
        "recipients": {"email": ["ops@example.com"]},
    }
    alert.update(overrides)
    return alert


def _sla(**config: Any) -> dict[str, Any]:
    base = {"datasource_id": "ds1", "expected_load_time": "09:00"}
    base.update(config)
    return _alert(name="SLA", condition_type="sla_breach", condition_config=base)


# (case id, file name, file content, words the one-line message must contain)
BAD_FILES: list[tuple[str, str, str, list[str]]] = [
    (
        "malformed-yaml",
        "a.yaml",
        "name: [unclosed\ncondition_type: sql\n",
        ["malformed YAML", "line"],
    ),
    ("malformed-json", "a.json", '{"name": "x",', ["malformed JSON"]),
    (
        "unknown-type",
        "a.json",
        json.dumps(_alert(condition_type="cpu_high")),
        ["condition_type", "cpu_high"],
    ),
    (
        "missing-required-config",
        "a.json",
        json.dumps(_alert(condition_type="query_slow", condition_config={"datasource_id": "ds1"})),
        ["condition_config.threshold_seconds", "missing"],
    ),
    (
        "bad-email",
        "a.json",
        json.dumps(_alert(recipients={"email": ["not-an-address"]})),
        ["recipients.email", "not-an-address"],
    ),
    (
        "non-e164",
        "a.json",
        json.dumps(_alert(channels=["whatsapp"], recipients={"whatsapp": ["+0987654321"]})),
        ["recipients.whatsapp", "+0987654321", "E.164"],
    ),
    (
        "http-webhook-public",
        "a.json",
        json.dumps(_alert(channels=["slack"], recipients={"slack": "http://hooks.slack.com/x/y"})),
        ["recipients.slack", "http", "hooks.slack.com"],
    ),
    (
        "bad-hhmm",
        "a.json",
        json.dumps(_sla(expected_load_time="25:61")),
        ["condition_config.expected_load_time", "25:61"],
    ),
    (
        "unknown-timezone",
        "a.json",
        json.dumps(_sla(timezone="Mars/Olympus")),
        ["condition_config.timezone", "Mars/Olympus"],
    ),
    (
        "missing-datasource",
        "a.json",
        json.dumps(
            _alert(
                condition_type="sql",
                condition_config={"datasource_id": "nope", "query": "select 1"},
            )
        ),
        ["datasource_id", "nope", "does not exist"],
    ),
    (
        "negative-threshold",
        "a.json",
        json.dumps(
            _alert(
                condition_type="query_slow",
                condition_config={"datasource_id": "ds1", "threshold_seconds": -5},
            )
        ),
        ["condition_config.threshold_seconds", "-5"],
    ),
    ("unknown-channel", "a.json", json.dumps(_alert(channels=["pager"])), ["channels[0]", "pager"]),
    ("unknown-field", "a.json", json.dumps(_alert(colour="red")), ["colour", "unknown field"]),
    (
        "wrong-type",
        "a.json",
        json.dumps(_alert(repeat_interval_minutes="often")),
        ["repeat_interval_minutes"],
    ),
    ("not-a-mapping", "a.yaml", "- just\n- a list\n", ["mapping"]),
    (
        "channel-without-recipients",
        "a.json",
        json.dumps(_alert(recipients={})),
        ["recipients.email"],
    ),
]


def _seed(cli: Cli) -> None:
    assert (
        cli("datasources", "add", "ds1", "--name", "DS", "--url", "sqlite:///x.db").exit_code == 0
    )
    assert cli("pipelines", "add", "p1", "--name", "P1").exit_code == 0
    assert (
        cli(
            "create", "--from-file", _write(Path("existing.json"), _alert(name="Existing"))
        ).exit_code
        == 0
    )


def _write(path: Path, data: Any) -> str:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def _assert_clean_refusal(result: Any, words: list[str]) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert "Traceback" not in result.output
    assert result.exception is None


@pytest.mark.parametrize(
    ("case", "name", "content", "words"), BAD_FILES, ids=[c[0] for c in BAD_FILES]
)
def test_bad_alert_document_is_refused(
    cli: Cli,
    sqlite_url: str,
    tmp_path: Path,
    case: str,
    name: str,
    content: str,
    words: list[str],
) -> None:
    _seed(cli)
    before = dump_store(sqlite_url)
    result = cli("create", "--from-file", _write(tmp_path / name, content))
    _assert_clean_refusal(result, words)
    assert dump_store(sqlite_url) == before


def test_duplicate_name_and_unknown_ref(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    _seed(cli)
    before = dump_store(sqlite_url)
    dup = cli("create", "--from-file", _write(tmp_path / "d.json", _alert(name="Existing")))
    _assert_clean_refusal(dup, ["name", "Existing", "already exists"])
    for command in (
        ["show", "999"],
        ["edit", "No such", "--severity", "info"],
        ["enable", "No such"],
        ["delete", "42", "--yes"],
    ):
        _assert_clean_refusal(cli(*command), ["REF", "no alert"])
    bad_edit = cli("edit", "Existing", "--config", "check_last_n_runs=0")
    _assert_clean_refusal(bad_edit, ["condition_config.check_last_n_runs"])
    bad_flag = cli("create", "--name", "x", "--type", "sql", "--config", "novalue")
    _assert_clean_refusal(bad_flag, ["--config", "KEY=VALUE"])
    assert dump_store(sqlite_url) == before


BAD_SYNC_FILES: list[tuple[str, str, list[str]]] = [
    ("malformed", "alerts: [\n", ["malformed YAML"]),
    ("unknown-top-level", "monitors: []\n", ["monitors", "unknown field"]),
    (
        "bad-datasource-id",
        "datasources:\n  - {id: 'has space', name: x, url: 'sqlite:///x'}\n",
        ["datasources[0].id"],
    ),
    ("bad-url", "datasources:\n  - {id: a, name: x, url: 'not a url'}\n", ["datasources[0].url"]),
    (
        "duplicate-alert",
        "alerts:\n  - "
        + json.dumps(
            _alert(
                name="A",
                condition_type="sql",
                condition_config={"datasource_id": "ds1", "query": "select 1"},
            )
        )
        + "\n  - "
        + json.dumps(
            _alert(
                name="A",
                condition_type="sql",
                condition_config={"datasource_id": "ds1", "query": "select 1"},
            )
        )
        + "\n",
        ["alerts[1]", "duplicate"],
    ),
    (
        "missing-pipeline",
        "alerts:\n  - " + json.dumps(_alert(condition_config={"pipeline_id": "zz"})) + "\n",
        ["pipeline", "zz", "does not exist"],
    ),
    (
        "bad-runs-source",
        "pipelines:\n  - {id: p2, name: x, runs: {source: cron}}\n",
        ["pipelines[0].runs"],
    ),
    (
        "alert-error-in-file",
        "alerts:\n  - " + json.dumps(_sla(expected_load_time="9am")) + "\n",
        ["alerts[0].condition_config.expected_load_time", "9am"],
    ),
]


@pytest.mark.parametrize(
    ("case", "content", "words"), BAD_SYNC_FILES, ids=[c[0] for c in BAD_SYNC_FILES]
)
def test_bad_sync_file_changes_nothing(
    cli: Cli, sqlite_url: str, tmp_path: Path, case: str, content: str, words: list[str]
) -> None:
    _seed(cli)
    before = dump_store(sqlite_url)
    result = cli("sync", _write(tmp_path / "alerts.yaml", content), "--prune")
    _assert_clean_refusal(result, words)
    assert dump_store(sqlite_url) == before


def test_sync_failing_late_rolls_back_everything(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    """An error found after some rows were written leaves the store as it was."""
    _seed(cli)
    before = dump_store(sqlite_url)
    content = (
        "datasources:\n  - {id: new-ds, name: New, url: 'sqlite:///n.db'}\n"
        "alerts:\n  - "
        + json.dumps(
            _alert(
                name="Existing",
                condition_config={"pipeline_id": "p1"},
                recipients={"email": ["x@example.com"]},
            )
        )
        + "\n  - "
        + json.dumps(
            _alert(
                name="Other",
                condition_config={"pipeline_id": "p1"},
                recipients={"slack": "<redacted>"},
                channels=["slack"],
            )
        )
        + "\n"
    )
    result = cli("sync", _write(tmp_path / "alerts.yaml", content))
    _assert_clean_refusal(result, ["recipients.slack", "<redacted>"])
    assert dump_store(sqlite_url) == before


def test_bad_env_file_and_bad_store(cli: Cli, tmp_path: Path) -> None:
    result = cli("--env-file", str(tmp_path / "missing.env"), "list")
    _assert_clean_refusal(result, ["--env-file", "missing.env"])
    unreachable = Cli("postgresql://u:pw-canary-123@127.0.0.1:1/db")("list")
    assert unreachable.exit_code == 1
    assert "store" in unreachable.stderr and "pw-canary-123" not in unreachable.output
    assert "Traceback" not in unreachable.output
