"""Log files and JSON logs: one object a line, run and alert ids, no secret, logrotate."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datamantri_alerts.store.engine import open_store
from tests.conftest import Cli
from tests.evaluator.conftest import Flags, Sink, make_alert

CANARY = "CANARYlogSECRET0123456789abcdef"
KEYS = {"time", "level", "logger", "message", "run_id", "alert_id"}


@pytest.fixture(autouse=True)
def plain_logging() -> Iterator[None]:
    """Each test starts and ends with stderr-only text logging (no file left attached)."""
    from datamantri_alerts.logs import configure_logging

    configure_logging(0)
    yield
    configure_logging(0)


@pytest.fixture
def store(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ALERTS_RETRY_INITIAL_DELAY", "0.05")
    monkeypatch.setenv("ALERTS_RETRY_ATTEMPTS", "2")
    opened = open_store(sqlite_url)
    yield opened
    opened.dispose()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_json_log_file_of_a_run(
    store: Any, cli: Cli, flags: Flags, sink: Sink, tmp_path: Path
) -> None:
    """The canary is in a webhook URL (path token) and in the error the receiver answers."""
    hook = sink.hook(f"a/{CANARY}")
    alert_id = make_alert(store, flags, "a", recipients={"slack": hook})
    flags.set(a="firing")
    sink.on(f"a/{CANARY}", (500, {}, f"upstream said {CANARY}"), (500, {}, f"again {CANARY}"))
    path = tmp_path / "alerts.log"
    result = cli("--log-file", str(path), "--log-format", "json", "evaluate", "--quiet")
    assert result.exit_code == 0, result.output  # a 500 waits for its retry: not a failure yet
    text = path.read_text()
    assert CANARY not in text
    assert CANARY not in result.output
    records = lines(path)
    assert records, "info lines go to the file without -v"
    for record in records:
        assert set(record) >= KEYS
        assert record["logger"].startswith("datamantri_alerts")
    started = next(r for r in records if "started" in r["message"])
    run_id = started["run_id"]
    assert isinstance(run_id, int)
    assert all(r["run_id"] == run_id for r in records)
    delivery = [r for r in records if r["logger"] == "datamantri_alerts.channels"]
    assert delivery and all(r["alert_id"] == alert_id for r in delivery)
    assert any("failed after 2 attempt(s): HTTP 500" in r["message"] for r in delivery)
    assert any(r["level"] == "INFO" for r in records)
    assert all(r["time"].endswith("Z") for r in records)


def test_json_on_stderr(store: Any, cli: Cli, flags: Flags, sink: Sink) -> None:
    make_alert(store, flags, "b", recipients={"slack": sink.hook("b")})
    flags.set(b="firing")
    result = cli("-v", "--log-format", "json", "evaluate", "--quiet")
    assert result.exit_code == 0, result.output
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert logged and all(set(r) >= KEYS for r in logged)


def test_environment_chooses_file_and_format(
    store: Any, cli: Cli, flags: Flags, sink: Sink, tmp_path: Path
) -> None:
    make_alert(store, flags, "c", recipients={"slack": sink.hook("c")})
    path = tmp_path / "env.log"
    env = {"ALERTS_LOG_FILE": str(path), "ALERTS_LOG_FORMAT": "json"}
    assert cli("evaluate", "--quiet", env=env).exit_code == 0
    assert all(set(r) >= KEYS for r in lines(path))


def test_reopened_after_logrotate_moves_it(tmp_path: Path) -> None:
    from datamantri_alerts.logs import configure_logging

    path = tmp_path / "alerts.log"
    configure_logging(0, log_file=str(path), log_format="json")
    log = logging.getLogger("datamantri_alerts.test")
    log.info("before rotation")
    path.rename(tmp_path / "alerts.log.1")  # what logrotate does (without copytruncate)
    log.info("after rotation")
    assert [r["message"] for r in lines(tmp_path / "alerts.log.1")] == ["before rotation"]
    assert [r["message"] for r in lines(path)] == ["after rotation"]


def test_tracebacks_are_redacted_in_json(tmp_path: Path) -> None:
    from datamantri_alerts.logs import configure_logging, log_context, set_run_id
    from datamantri_alerts.secrets import register_secret

    register_secret(CANARY)
    path = tmp_path / "t.log"
    configure_logging(0, log_file=str(path), log_format="json")
    log = logging.getLogger("datamantri_alerts.test")
    set_run_id(77)
    try:
        with log_context(alert_id=5):
            try:
                raise ValueError(f"boom with {CANARY}\nsecond line")
            except ValueError:
                log.exception("crashed using %s", CANARY)
        log.warning("outside the alert")
    finally:
        set_run_id(None)
    first, second = lines(path)
    assert CANARY not in path.read_text()
    assert first["message"] == "crashed using ***"
    assert "ValueError: boom with ***" in first["exception"]
    assert (first["run_id"], first["alert_id"], first["level"]) == (77, 5, "ERROR")
    assert (second["run_id"], second["alert_id"]) == (77, None)
    assert len(path.read_text().splitlines()) == 2  # the traceback stays inside its line


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--log-format", "xml"], {}, "error: --log-format: must be one of text, json, got 'xml'"),
        ([], {"ALERTS_LOG_FORMAT": "yaml"}, "error: ALERTS_LOG_FORMAT: must be one of"),
        (["--log-file", "/nonexistent-dir/x.log"], {}, "error: --log-file: cannot open"),
    ],
)
def test_bad_log_settings_are_input_errors(
    cli: Cli, args: list[str], env: dict[str, str], expected: str
) -> None:
    result = cli(*args, "list", env=env or None)
    assert result.exit_code == 2
    assert result.stderr.startswith(expected), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
