"""`alerts mute` / `unmute` through the CLI, and the heartbeat pings around a run."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from datamantri_alerts.store.engine import open_store
from datamantri_alerts.store.models import Alert, Notification
from tests.conftest import Cli, closed_port
from tests.evaluator.conftest import Flags, Sink, make_alert


@pytest.fixture
def store(sqlite_url: str) -> Any:
    opened = open_store(sqlite_url)
    yield opened
    opened.dispose()


def test_mute_suppresses_then_unmute_sends(store: Any, cli: Cli, flags: Flags, sink: Sink) -> None:
    make_alert(store, flags, "noisy", recipients={"slack": sink.hook("noisy")})
    muted = cli("mute", "noisy", "--for", "2h", "--reason", "deploy", "--json")
    assert muted.exit_code == 0, muted.output
    assert muted.json()["reason"] == "deploy"
    assert cli("mute", "noisy", "--for", "forever").exit_code == 2
    assert cli("mute", "ghost", "--for", "1h").exit_code == 2

    flags.set(noisy="firing")
    run = cli("evaluate", "--json")
    assert run.exit_code == 0
    assert run.json()["notifications"] == {"sent": 0, "failed": 0, "pending": 0, "suppressed": 1}
    assert run.json()["results"][0]["state"] == "firing"
    assert sink.received == []

    assert "unmuted" in cli("unmute", "noisy").stdout
    with store.session() as session:
        alert = session.scalars(select(Alert)).one()
        assert (alert.muted_until, alert.mute_reason) == (None, None)
        statuses = list(session.scalars(select(Notification.status)))
    assert statuses == ["suppressed"]
    assert "was not muted" in cli("unmute", "noisy").stdout


def test_heartbeat_start_and_success_then_fail(
    store: Any, cli: Cli, flags: Flags, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERTS_HEARTBEAT_URL", sink.hook("beat"))
    make_alert(store, flags, "fine", recipients={"slack": sink.hook("fine")})
    assert cli("evaluate").exit_code == 0
    assert [r.path for r in sink.received] == ["/hook/beat/start", "/hook/beat"]

    flags.set(fine="error")
    assert cli("evaluate", "--all").exit_code == 1
    paths = [r.path for r in sink.received if r.path.startswith("/hook/beat")]
    assert paths[2:] == ["/hook/beat/start", "/hook/beat/fail"]


def test_heartbeat_down_never_fails_the_run(
    store: Any, cli: Cli, flags: Flags, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERTS_HEARTBEAT_URL", f"http://127.0.0.1:{closed_port()}/ping/TOKEN123")
    make_alert(store, flags, "fine", recipients={"slack": sink.hook("fine")})
    result = cli("evaluate")
    assert result.exit_code == 0, result.output
    assert "TOKEN123" not in result.output


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/ping/TOKEN123",
        "https://100.100.100.200/ping/TOKEN123",
        "http://[::ffff:10.0.0.1]/ping/TOKEN123",
    ],
)
def test_heartbeat_to_a_private_address_is_refused(
    url: str, connects: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    from datamantri_alerts.services.heartbeat import Heartbeat

    with caplog.at_level("WARNING", logger="datamantri_alerts.services.heartbeat"):
        assert Heartbeat.from_env({"ALERTS_HEARTBEAT_URL": url}).start() is False
    assert connects == []
    assert "destination policy refused heartbeat connection" in caplog.text
    assert "ALERTS_ALLOW_PRIVATE_WEBHOOKS=1" in caplog.text
    assert "TOKEN123" not in caplog.text


def test_heartbeat_opt_out_and_no_redirects(sink: Sink, connects: list[str]) -> None:
    """0.0.0.0 (Linux connects it to loopback) needs the opt-out; a redirect is a failed ping."""
    from datamantri_alerts.services.heartbeat import Heartbeat

    url = sink.hook("beat").replace("127.0.0.1", "0.0.0.0")
    assert Heartbeat.from_env({"ALERTS_HEARTBEAT_URL": url}).start() is False
    assert connects == [] and sink.received == []
    opted = {"ALERTS_HEARTBEAT_URL": url, "ALERTS_ALLOW_PRIVATE_WEBHOOKS": "1"}
    assert Heartbeat.from_env(opted).start() is True
    assert [r.path for r in sink.received] == ["/hook/beat/start"]
    assert connects == ["0.0.0.0"]

    sink.on("moved", (302, {"Location": sink.hook("beat")}, ""))
    moved = Heartbeat.from_env({"ALERTS_HEARTBEAT_URL": sink.hook("moved")})
    assert moved.finish(True) is False
    assert [r.path for r in sink.received] == ["/hook/beat/start", "/hook/moved"]
