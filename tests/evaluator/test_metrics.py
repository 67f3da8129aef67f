"""Prometheus metrics after a scripted run, parsed by prometheus_client's own text parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, update

from datamantri_alerts.store.engine import open_store
from datamantri_alerts.store.models import Alert, Notification
from tests.conftest import Cli
from tests.evaluator.conftest import Flags, Sink, make_alert

P = "datamantri_alerts_"


@pytest.fixture
def store(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ALERTS_RETRY_INITIAL_DELAY", "0.05")
    monkeypatch.setenv("ALERTS_RETRY_ATTEMPTS", "2")
    opened = open_store(sqlite_url)
    yield opened
    opened.dispose()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text, keyed by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[(P + name, tuple(sorted(labels.items())))]


def scripted_run(store: Any, cli: Cli, flags: Flags, sink: Sink, *args: str, **env: str) -> Any:
    make_alert(store, flags, "a", severity="critical", recipients={"slack": sink.hook("a")})
    make_alert(store, flags, "b", severity="warning", recipients={"slack": sink.hook("b")})
    make_alert(store, flags, "c", severity="info", recipients={"slack": sink.hook("c")})
    make_alert(store, flags, "e", severity="critical", recipients={"slack": sink.hook("e")})
    make_alert(store, flags, "off", is_active=False, recipients={"slack": sink.hook("off")})
    flags.set(a="firing", b="ok", c="error", e="firing")
    sink.on("e", (404, {}, "no_service"))
    return cli("evaluate", "--json", *args, env=env or None)


def test_metrics_file_after_a_scripted_run(
    store: Any, cli: Cli, flags: Flags, sink: Sink, tmp_path: Path
) -> None:
    path = tmp_path / "textfile" / "alerts.prom"
    path.parent.mkdir()
    before = datetime.now(UTC).timestamp()
    result = scripted_run(store, cli, flags, sink, "--metrics-file", str(path))
    assert result.exit_code == 1, result.output  # an error check and a failed notification
    found = samples(path.read_text())

    assert value(found, "runs_total", outcome="failed") == 1
    assert value(found, "runs_total", outcome="ok") == 0
    assert value(found, "checks_total", outcome="evaluated") == 4
    assert value(found, "checks_total", outcome="error") == 1
    assert value(found, "alerts", state="firing", severity="critical") == 2
    assert value(found, "alerts", state="ok", severity="warning") == 1
    assert value(found, "alerts", state="error", severity="info") == 1
    assert value(found, "alerts", state="disabled", severity="warning") == 1
    assert value(found, "alerts", state="pending", severity="critical") == 0
    # a (firing) and c (could not evaluate: an error episode notifies too) sent; e refused.
    assert value(found, "notifications_total", channel="slack", outcome="sent") == 2
    assert value(found, "notifications_total", channel="slack", outcome="failed") == 1
    assert value(found, "outbox_pending") == 0
    assert value(found, "outbox_oldest_pending_age_seconds") == 0
    assert value(found, "evaluation_lag_seconds") == 0
    last = value(found, "last_run_timestamp_seconds")
    assert before - 1 <= last <= datetime.now(UTC).timestamp() + 1
    assert 0 <= value(found, "last_run_duration_seconds") < 120
    # No temporary file is left next to it (written atomically by rename).
    assert [p.name for p in path.parent.iterdir()] == ["alerts.prom"]

    # `alerts metrics` prints the same from the store.
    printed = cli("metrics")
    assert printed.exit_code == 0, printed.output
    assert samples(printed.output) == found


def test_environment_variable_names_the_file(
    store: Any, cli: Cli, flags: Flags, sink: Sink, tmp_path: Path
) -> None:
    path = tmp_path / "env.prom"
    scripted_run(store, cli, flags, sink, ALERTS_METRICS_FILE=str(path))
    assert value(samples(path.read_text()), "checks_total", outcome="evaluated") == 4


def test_second_run_adds_to_the_counters(
    store: Any, cli: Cli, flags: Flags, sink: Sink, tmp_path: Path
) -> None:
    path = tmp_path / "m.prom"
    scripted_run(store, cli, flags, sink, "--metrics-file", str(path))
    flags.set(c="ok")
    again = cli("evaluate", "--all", "--metrics-file", str(path))
    assert again.exit_code == 0, again.output
    found = samples(path.read_text())
    assert value(found, "runs_total", outcome="failed") == 1
    assert value(found, "runs_total", outcome="ok") == 1
    assert value(found, "checks_total", outcome="evaluated") == 8
    assert value(found, "checks_total", outcome="error") == 1
    assert value(found, "alerts", state="ok", severity="info") == 1


def test_unwritable_metrics_file_does_not_fail_the_run(
    store: Any, cli: Cli, flags: Flags, sink: Sink, tmp_path: Path
) -> None:
    make_alert(store, flags, "a", recipients={"slack": sink.hook("a")})
    missing = tmp_path / "no-such-dir" / "m.prom"
    result = cli("evaluate", "--metrics-file", str(missing))
    assert result.exit_code == 0, result.output
    assert "could not write the metrics file" in result.output
    assert "Traceback" not in result.output
    assert not missing.exists()


def test_lag_and_oldest_pending_age(store: Any, flags: Flags) -> None:
    """Evaluation lag is now minus the oldest due next_due_at; outbox age the oldest pending."""
    from datamantri_alerts.clock import FrozenClock
    from datamantri_alerts.services.metrics import current, render

    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    first = make_alert(store, flags, "late")
    second = make_alert(store, flags, "later")
    make_alert(store, flags, "future")
    with store.transaction() as session:
        session.execute(
            update(Alert).where(Alert.id == first).values(next_due_at=now - timedelta(seconds=90))
        )
        session.execute(
            update(Alert).where(Alert.id == second).values(next_due_at=now - timedelta(seconds=30))
        )
        session.execute(
            update(Alert).where(Alert.name == "future").values(next_due_at=now + timedelta(hours=1))
        )
        for age, status in ((300, "pending"), (60, "pending"), (900, "sent")):
            session.execute(
                insert(Notification).values(
                    dedup_key=f"k{age}",
                    alert_id=first,
                    channel="webhook",
                    recipient="${HOOK}",
                    kind="firing",
                    status=status,
                    payload={},
                    attempts=0,
                    created_at=now - timedelta(seconds=age),
                    next_attempt_at=now,
                )
            )
    found = samples(render(current(store, FrozenClock(now))))
    assert value(found, "evaluation_lag_seconds") == 90
    assert value(found, "outbox_pending") == 2
    assert value(found, "outbox_oldest_pending_age_seconds") == 300
    assert value(found, "notifications_total", channel="webhook", outcome="sent") == 1
    assert (P + "last_run_timestamp_seconds", ()) not in found  # no run yet


def test_names_follow_prometheus_conventions(store: Any) -> None:
    from datamantri_alerts.clock import SystemClock
    from datamantri_alerts.services.metrics import current, render

    text = render(current(store, SystemClock()))
    for family in text_string_to_metric_families(text):
        assert family.name.startswith(P)
        assert family.documentation
        if family.type == "counter":
            assert all(
                s.name.endswith("_total") for s in family.samples if "_created" not in s.name
            )
        for sample in family.samples:
            assert "_ms" not in sample.name and "milliseconds" not in sample.name
