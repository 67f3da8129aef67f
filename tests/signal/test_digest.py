"""Storms become digests, on a frozen clock, on SQLite and PostgreSQL, against the loopback
Slack sink and SMTP stand-in: each run's notifications for one destination beyond the threshold
go as one digest (split only where the channel's limits force it), and each episode still
records its notification as delivered with the digest it went in."""

from __future__ import annotations

import email
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from datamantri_alerts.channels.retry import RetryPolicy
from datamantri_alerts.clock import FrozenClock
from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from datamantri_alerts.store.models import AlertHistory, Notification
from tests.channels.conftest import SMTPServer, slack_payload_problems
from tests.conftest import SERVER_DIALECTS_SLOW, Cli, utc
from tests.evaluator.conftest import Flags, Sink, make_alerts
from tests.evaluator.helpers import as_a_new_process, slack_state

T0 = utc(2026, 3, 2, 9, 0)
FAST = RetryPolicy(attempts=1, initial_delay=0, jitter=0)


def run(store: Any, clock: FrozenClock, **kwargs: Any) -> Any:
    kwargs.setdefault("retry_policy", FAST)
    kwargs.setdefault("environ", {})
    as_a_new_process()
    return run_evaluation(store, clock, RunOptions(host="test-host", **kwargs))


def storm(store: Any, flags: Flags, count: int, recipients: dict[str, Any], **extra: Any) -> None:
    make_alerts(
        store,
        flags,
        [
            {"name": f"storm-{i:03d}", "channels": list(recipients), "recipients": recipients}
            | extra
            for i in range(count)
        ],
    )
    flags.set(default="firing")


def rows(store: Any) -> list[Notification]:
    with store.session() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def episodes(store: Any) -> list[AlertHistory]:
    with store.session() as session:
        return list(session.scalars(select(AlertHistory).order_by(AlertHistory.id)))


def digest_text(body: dict[str, Any]) -> str:
    return "\n".join(
        b["text"]["text"] for b in body["attachments"][0]["blocks"] if b["type"] == "section"
    )


def test_200_alerts_firing_at_once_reach_one_webhook_in_at_most_5_messages(
    store: Any, flags: Flags, sink: Sink
) -> None:
    storm(store, flags, 200, {"slack": sink.hook("storm")})
    summary = run(store, FrozenClock(T0))
    assert summary.notifications.sent == 200, summary.problems

    bodies = sink.bodies("storm")
    assert 1 <= len(bodies) <= 5
    for body in bodies:
        assert slack_payload_problems(body) == []
    listed = "\n".join(digest_text(b) for b in bodies)
    for i in range(200):
        assert f"*storm-{i:03d}*" in listed
    assert listed.count("FIRING") == 200

    assert {r.status for r in rows(store)} == {"sent"}
    found = episodes(store)
    assert len(found) == 200
    digest_ids = set()
    for episode in found:
        [entry] = episode.notifications_sent
        assert entry["status"] == "sent" and entry["digest"].startswith("dg-")
        digest_ids.add(entry["digest"])
    # One digest per claimed batch of rows for this webhook.
    assert 1 <= len(digest_ids) <= len(bodies)

    shown = Cli(store.url)("history", "show", str(found[0].id), env={"COLUMNS": "200"})
    assert f"sent in digest {found[0].notifications_sent[0]['digest']}" in shown.stdout


@SERVER_DIALECTS_SLOW
@pytest.mark.parametrize(("count", "messages"), [(5, 5), (6, 1)])
def test_the_default_threshold_is_5(
    store: Any, flags: Flags, sink: Sink, count: int, messages: int
) -> None:
    storm(store, flags, count, {"slack": sink.hook("t")})
    run(store, FrozenClock(T0))
    bodies = sink.bodies("t")
    assert len(bodies) == messages
    if messages == count:
        assert [slack_state(b) for b in bodies] == ["FIRING"] * count
        assert all("digest" not in e.notifications_sent[0] for e in episodes(store))


def test_threshold_per_channel_and_destinations_kept_apart(
    store: Any, flags: Flags, sink: Sink
) -> None:
    storm(store, flags, 3, {"slack": sink.hook("a")})
    make_alerts(
        store,
        flags,
        [
            {"name": f"b-{i}", "channels": ["slack"], "recipients": {"slack": sink.hook("b")}}
            for i in range(3)
        ],
    )
    env = {"ALERTS_DIGEST_THRESHOLD": "10", "ALERTS_DIGEST_THRESHOLD_SLACK": "2"}
    run(store, FrozenClock(T0), environ=env)
    assert len(sink.bodies("a")) == 1 and len(sink.bodies("b")) == 1
    assert "storm-000" in digest_text(sink.bodies("a")[0])
    assert "b-0" in digest_text(sink.bodies("b")[0])
    assert "storm" not in digest_text(sink.bodies("b")[0])


def test_a_bad_threshold_is_refused_before_anything_is_sent(
    store: Any, flags: Flags, sink: Sink
) -> None:
    from datamantri_alerts.errors import InputError

    storm(store, flags, 1, {"slack": sink.hook("x")})
    with pytest.raises(InputError, match="ALERTS_DIGEST_THRESHOLD_EMAIL"):
        run(store, FrozenClock(T0), environ={"ALERTS_DIGEST_THRESHOLD_EMAIL": "many"})
    assert sink.bodies("x") == []


def test_transient_digest_failure_leaves_every_row_pending_then_retries_as_a_digest(
    store: Any, flags: Flags, sink: Sink
) -> None:
    storm(store, flags, 8, {"slack": sink.hook("r")})
    sink.on("r", 503)
    clock = FrozenClock(T0)
    summary = run(store, clock)
    assert (summary.notifications.sent, summary.notifications.pending) == (0, 8)
    assert len(sink.bodies("r")) == 1
    assert {(r.status, r.attempts) for r in rows(store)} == {("pending", 1)}
    for episode in episodes(store):
        [entry] = episode.notification_errors
        assert entry["status"] == "retrying" and entry["digest"].startswith("dg-")

    clock.advance(minutes=2)
    again = run(store, clock)
    assert again.notifications.sent == 8
    assert len(sink.bodies("r")) == 2  # the retry went as one digest again
    assert {r.status for r in rows(store)} == {"sent"}
    assert all(len(e.notifications_sent) == 1 for e in episodes(store))


def test_permanent_digest_failure_fails_every_row(store: Any, flags: Flags, sink: Sink) -> None:
    storm(store, flags, 7, {"slack": sink.hook("p")})
    sink.on("p", (404, {}, "no_service"))
    summary = run(store, FrozenClock(T0))
    assert summary.notifications.failed == 7
    assert len(sink.bodies("p")) == 1
    assert {r.status for r in rows(store)} == {"failed"}
    assert all("no_service" in (r.last_error or "") for r in rows(store))


def test_resolved_storm_is_one_digest_too(store: Any, flags: Flags, sink: Sink) -> None:
    storm(store, flags, 6, {"slack": sink.hook("s")})
    clock = FrozenClock(T0)
    run(store, clock)
    flags.set(default="ok")
    for _ in range(2):  # a recovery is confirmed on the second ok evaluation in a row
        clock.advance(timedelta(minutes=10))
        run(store, clock)
    bodies = sink.bodies("s")
    assert len(bodies) == 2
    assert digest_text(bodies[1]).count("RESOLVED") == 6
    assert bodies[1]["attachments"][0]["color"] == "#2E7D32"


def test_email_storm_is_one_digest_email_per_recipient(
    store: Any, flags: Flags, smtp_plain: SMTPServer
) -> None:
    recipients = {"email": ["oncall@example.com", "data@example.com"]}
    make_alerts(
        store,
        flags,
        [
            {
                "name": f"mail-{i}",
                "channels": ["email"],
                "recipients": recipients,
                "key": f"<b>k{i}</b>",
            }
            for i in range(7)
        ],
    )
    flags.set(default="firing")
    summary = run(store, FrozenClock(T0), environ=smtp_plain.environ)
    assert summary.notifications.sent == 14, summary.problems
    messages = smtp_plain.recorder.messages
    assert sorted(m.rcpt_tos[0] for m in messages) == ["data@example.com", "oncall@example.com"]
    for delivered in messages:
        parsed = email.message_from_bytes(delivered.content)
        assert parsed["X-Alerts-State"] == "DIGEST"
        assert parsed["Subject"].startswith("[DIGEST] 7 alerts (7 FIRING)")
        text = parsed.get_payload()[0].get_payload(decode=True).decode()
        html = parsed.get_payload()[1].get_payload(decode=True).decode()
        for i in range(7):
            assert f"mail-{i}" in text and f"mail-{i}" in html
            assert f"&lt;b&gt;k{i}&lt;/b&gt;" in html  # data, not markup
        assert "<b>k0</b>" not in html
    entries = [e.notifications_sent for e in episodes(store)]
    assert all(len(sent) == 2 for sent in entries)
    assert len({s["digest"] for sent in entries for s in sent}) == 2


def test_channels_without_digests_get_each_notification_alone(
    store: Any, flags: Flags, sink: Sink
) -> None:
    # The generic webhook's receivers expect one documented body per notification.
    storm(store, flags, 7, {"webhook": sink.hook("w")})
    summary = run(store, FrozenClock(T0))
    assert summary.notifications.sent == 7, summary.problems
    bodies = sink.bodies("w")
    assert len(bodies) == 7 and {b["event"] for b in bodies} == {"firing"}
    assert all("digest" not in e.notifications_sent[0] for e in episodes(store))
