"""Digest pages against the channels' stand-ins, validated like single messages: Slack's Block
Kit limits, the Adaptive Card 1.4 schema and 28 KB for Teams, WhatsApp's body limit; every
value escaped for its renderer; split only where the limit forces it."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from typing import Any

from datamantri_alerts.channels.base import Digest, Message
from datamantri_alerts.channels.retry import RetryPolicy
from datamantri_alerts.services.delivery import Claimed
from datamantri_alerts.services.signal.digest import Unit, send_digest
from tests.channels.conftest import (
    SLACK_PATH,
    TEAMS_PATH,
    WHATSAPP_TO,
    FakeTime,
    LoopbackHTTPServer,
    Reply,
    sample_message,
    slack_payload_problems,
    teams_payload_problems,
    twilio_environ,
)

HOSTILE = "<!channel> *bold* _it_ ~s~ `tick` [x](http://evil.example) <b>&amp;"


def messages(count: int, summary_length: int = 300) -> list[Message]:
    summary = (HOSTILE + " ") * (summary_length // len(HOSTILE) + 1)
    return [
        sample_message(
            alert_id=i,
            alert_name=f"alert-{i:03d} {HOSTILE}",
            summary=summary[:summary_length],
            state="RESOLVED" if i % 3 == 0 else "FIRING",
            at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        )
        for i in range(count)
    ]


def unit(channel: str, recipient: str, found: list[Message]) -> Unit:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    rows = tuple(
        Claimed(i + 1, i + 1, channel, recipient, "firing", m.model_dump(mode="json"), 0, now)
        for i, m in enumerate(found)
    )
    return Unit(rows, "dg-test")


def send(u: Unit, environ: dict[str, str]) -> list[Any]:
    return send_digest(u, environ=environ, policy=RetryPolicy(attempts=1), sleep=FakeTime().sleep)


def test_slack_pages_keep_block_kit_limits_and_are_as_few_as_they_can_be(
    slack_server: LoopbackHTTPServer,
) -> None:
    from datamantri_alerts.channels.slack import CHANNEL, SlackConfig

    found = messages(300, 500)
    outcome = send(unit("slack", slack_server.url(SLACK_PATH), found), {})
    assert [r.status for _, r in outcome] == ["delivered"] * 300
    payloads = [r.json() for r in slack_server.requests]
    assert len(payloads) == len(
        CHANNEL.digest_pages(Digest(digest_id="d", messages=found), SlackConfig())
    )
    # 600-character lines, 3000-character sections, 48 item sections a message: 2 messages.
    assert len(payloads) == 2
    for payload in payloads:
        assert slack_payload_problems(payload) == []
        text = json.dumps(payload)
        assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    sections = [
        b["text"]["text"]
        for p in payloads
        for b in p["attachments"][0]["blocks"]
        if b["type"] == "section"
    ]
    for i in range(300):
        assert sum(f"alert-{i:03d}" in s for s in sections) == 1


def test_teams_pages_are_valid_adaptive_cards_under_28_kb(
    teams_server: LoopbackHTTPServer, card_validator: Any
) -> None:
    from datamantri_alerts.channels.teams import (
        CHANNEL,
        MAX_PAYLOAD_BYTES,
        TeamsConfig,
        build_digest_payload,
    )

    found = messages(150, 400)
    outcome = send(unit("teams", teams_server.url(TEAMS_PATH), found), {})
    assert {r.status for _, r in outcome} == {"delivered"}
    payloads = [r.json() for r in teams_server.requests]
    assert len(payloads) > 1
    digest = Digest(digest_id="d", messages=found)
    pages = CHANNEL.digest_pages(digest, TeamsConfig())
    assert len(pages) == len(payloads)
    for payload in payloads:
        assert teams_payload_problems(payload, card_validator) == []
    # Split only where forced: each page but the last would be too big with the next item.
    for page, following in itertools.pairwise(pages):
        bigger = build_digest_payload(digest.part([*page, following[0]]), TeamsConfig())
        assert len(json.dumps(bigger, ensure_ascii=False, separators=(",", ":")).encode()) > (
            MAX_PAYLOAD_BYTES
        )
    text = json.dumps(payloads)
    assert "alert-149" in text and "<b>" not in text


def test_whatsapp_pages_stay_within_the_body_limit(twilio_server: LoopbackHTTPServer) -> None:
    found = messages(40, 120)
    outcome = send(unit("whatsapp", WHATSAPP_TO, found), twilio_environ(twilio_server))
    assert {r.status for _, r in outcome} == {"delivered"}, outcome[0][1].error
    bodies = [r.form()["Body"] for r in twilio_server.requests]
    assert len(bodies) > 1
    assert all(len(body) <= 1600 for body in bodies)
    assert all(body.startswith("*") and "alerts (" in body for body in bodies)
    joined = "\n".join(bodies)
    for i in range(40):
        assert joined.count(f"alert-{i:03d}") == 1
    assert "*bold*" not in joined  # WhatsApp formatting in data is escaped


def test_one_failed_page_fails_only_its_own_rows(slack_server: LoopbackHTTPServer) -> None:
    slack_server.script(Reply(200, "ok"), Reply(404, "no_service"))
    outcome = send(unit("slack", slack_server.url(SLACK_PATH), messages(300, 500)), {})
    statuses = [r.status for _, r in outcome]
    assert "delivered" in statuses and "failed" in statuses
    first_failed = statuses.index("failed")
    assert set(statuses[:first_failed]) == {"delivered"}
    assert set(statuses[first_failed:]) == {"failed"}


def test_digest_templates_are_overridable_and_still_escape(
    slack_server: LoopbackHTTPServer, tmp_path: Any
) -> None:
    (tmp_path / "slack").mkdir()
    (tmp_path / "slack" / "digest_item.md.j2").write_text("ITEM {{ alert_name }}\n")
    environ = {"ALERTS_TEMPLATES_DIR": str(tmp_path)}
    outcome = send(unit("slack", slack_server.url(SLACK_PATH), messages(8)), environ)
    assert {r.status for _, r in outcome} == {"delivered"}
    [payload] = [r.json() for r in slack_server.requests]
    assert slack_payload_problems(payload) == []
    text = json.dumps(payload)
    assert "ITEM alert-007 &lt;!channel&gt;" in text and "<!channel>" not in text


def test_an_unconfigured_channel_fails_every_row_of_the_digest_with_the_reason() -> None:
    outcome = send(unit("whatsapp", WHATSAPP_TO, messages(7)), {})
    assert len(outcome) == 7
    assert {(r.status, r.retryable) for _, r in outcome} == {("failed", False)}
    assert all("TWILIO_ACCOUNT_SID is not set" in (r.error or "") for _, r in outcome)
