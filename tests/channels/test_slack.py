"""Slack against a loopback stand-in that checks Block Kit the way Slack does."""

from __future__ import annotations

import time

import pytest

from datamantri_alerts.channels.retry import RecipientPacer, RetryPolicy, deliver
from tests.channels.conftest import (
    SLACK_PATH,
    SLACK_TOKEN,
    FakeTime,
    LoopbackHTTPServer,
    Reply,
    sample_message,
    slack_payload_problems,
)


def send(server: LoopbackHTTPServer, pacer: RecipientPacer | None = None, **message: object):
    return deliver(
        "slack",
        sample_message(**message),
        server.url(SLACK_PATH),
        environ={},
        policy=RetryPolicy(attempts=1),
        pacer=pacer or RecipientPacer(),
    )


def blocks_of(payload: dict) -> list[dict]:
    (attachment,) = payload["attachments"]
    return attachment["blocks"]


def test_payload_is_block_kit_in_a_coloured_attachment(slack_server: LoopbackHTTPServer) -> None:
    result = send(slack_server)
    assert result.status == "delivered", result.error
    (request,) = slack_server.requests
    assert request.path == SLACK_PATH
    payload = request.json()
    assert payload["text"].startswith("[FIRING] CRITICAL: Nightly ETL failed")
    (attachment,) = payload["attachments"]
    assert attachment["color"] == "#D32F2F"
    blocks = attachment["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "section", "section", "context"]
    assert blocks[0]["text"] == {
        "type": "plain_text",
        "text": "[FIRING] Nightly ETL failed",
        "emoji": False,
    }
    assert "The nightly ETL must not fail" in blocks[1]["text"]["text"]
    assert "last run of xyz-789 failed" in blocks[1]["text"]["text"]
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in blocks[2]["fields"]}
    assert fields == {
        "*Type*": "pipeline_failure",
        "*Severity*": "critical",
        "*State*": "FIRING",
        "*When*": "2024-08-01T06:30:00+00:00",
        "*Host*": "etl-runner-1",
    }
    assert "xyz-789" in blocks[3]["text"]["text"]
    assert "etl-runner-1" in blocks[4]["elements"][0]["text"]
    assert slack_payload_problems(payload) == []


@pytest.mark.parametrize(
    ("state", "severity", "colour"),
    [
        ("FIRING", "warning", "#F9A825"),
        ("REPEAT", "info", "#1E88E5"),
        ("RESOLVED", "critical", "#2E7D32"),
    ],
)
def test_colour_follows_severity_and_resolution(
    slack_server: LoopbackHTTPServer, state: str, severity: str, colour: str
) -> None:
    assert send(slack_server, state=state, severity=severity).status == "delivered"
    payload = slack_server.requests[-1].json()
    assert payload["attachments"][0]["color"] == colour
    assert payload["text"].startswith(f"[{state}]")


def test_mrkdwn_control_characters_are_escaped(slack_server: LoopbackHTTPServer) -> None:
    send(slack_server, description="a <!channel> & <http://evil|click>")
    text = blocks_of(slack_server.requests[-1].json())[1]["text"]["text"]
    assert "&lt;!channel&gt; &amp; &lt;http://evil|click&gt;" in text
    assert "<!channel>" not in text


def test_limits_hold_for_huge_messages(slack_server: LoopbackHTTPServer) -> None:
    details = {f"key_{i}": "v" * 3000 for i in range(100)}
    result = send(slack_server, alert_name="N" * 400, summary="S" * 10_000, details=details)
    assert result.status == "delivered", result.error
    payload = slack_server.requests[-1].json()
    assert slack_payload_problems(payload) == []
    blocks = blocks_of(payload)
    assert len(blocks) <= 50
    assert len(blocks[0]["text"]["text"]) <= 150
    assert blocks[0]["text"]["text"].endswith("… [truncated]")
    sections = [b for b in blocks if b["type"] == "section" and "text" in b]
    assert all(len(b["text"]["text"]) <= 3000 for b in sections)
    assert "… [truncated]" in sections[-1]["text"]["text"]


def test_the_stand_in_refuses_what_slack_refuses(slack_server: LoopbackHTTPServer) -> None:
    """The checks the other tests rely on do bite: an over-long section is refused."""
    import requests

    payload = {
        "text": "x",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}}],
    }
    assert slack_payload_problems(payload) == ["section text length"]
    reply = requests.post(slack_server.url(SLACK_PATH), json=payload, timeout=5)
    assert (reply.status_code, reply.text) == (400, "invalid_blocks")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (410, "channel_is_archived"),
        (404, "no_service"),
        (403, "action_prohibited"),
        (400, "invalid_payload"),
    ],
)
def test_permanent_errors_keep_slacks_reason(
    slack_server: LoopbackHTTPServer, status: int, body: str
) -> None:
    slack_server.script(Reply(status, body))
    result = deliver(
        "slack",
        sample_message(),
        slack_server.url(SLACK_PATH),
        environ={},
        policy=RetryPolicy(jitter=0),
        sleep=FakeTime().sleep,
        pacer=RecipientPacer(),
    )
    assert result.status == "failed"
    assert result.retryable is False
    assert result.attempts == 1
    assert result.error == f"HTTP {status}: {body}"
    assert result.error_status == status


def test_200_without_ok_is_not_delivered(slack_server: LoopbackHTTPServer) -> None:
    slack_server.script(Reply(200, "invalid_token"))
    result = send(slack_server)
    assert result.status == "failed"
    assert "invalid_token" in result.error


def test_redirects_are_not_followed(slack_server: LoopbackHTTPServer) -> None:
    slack_server.script(Reply(302, "", {"Location": slack_server.url("/moved")}))
    result = send(slack_server)
    assert result.status == "failed"
    assert result.retryable is False
    assert "redirect" in result.error
    assert [r.path for r in slack_server.requests] == [SLACK_PATH]
    assert SLACK_TOKEN not in result.error


def test_one_message_per_second_per_webhook(slack_server: LoopbackHTTPServer) -> None:
    pacer = RecipientPacer()
    for _ in range(3):
        assert send(slack_server, pacer=pacer).status == "delivered"
    arrivals = [r.at for r in slack_server.requests]
    # Counted from the end of the previous send, which came after its arrival: Slack sees them
    # a full second apart however late the previous one reached it (a slot counted from the
    # start let a first request delayed on a loaded machine arrive 0.9 s before the next).
    assert arrivals[1] - arrivals[0] >= 1.0
    assert arrivals[2] - arrivals[1] >= 1.0


def test_pacing_is_per_webhook(slack_server: LoopbackHTTPServer) -> None:
    """Another webhook is not held back by the first one's pace."""
    fake = FakeTime()
    pacer = RecipientPacer()
    other = slack_server.url(SLACK_PATH.replace("B0TESTHOOK", "B0OTHERHOOK"))
    for url in (slack_server.url(SLACK_PATH), other, slack_server.url(SLACK_PATH)):
        result = deliver(
            "slack",
            sample_message(),
            url,
            environ={},
            policy=RetryPolicy(attempts=1),
            sleep=fake.sleep,
            monotonic=fake.monotonic,
            pacer=pacer,
        )
        assert result.status == "delivered"
    assert fake.sleeps == [1.0]  # only the second send to the first webhook waited


def test_unresolved_fallback_names_the_variable(slack_server: LoopbackHTTPServer) -> None:
    from datamantri_alerts.channels import delivery_targets

    assert delivery_targets(["slack"], {}) == [("slack", "${SLACK_WEBHOOK_URL}")]
    result = deliver("slack", sample_message(), "${SLACK_WEBHOOK_URL}", environ={})
    assert result.status == "failed"
    assert result.error == "environment variable SLACK_WEBHOOK_URL is not set"
    url = slack_server.url(SLACK_PATH)
    result = deliver(
        "slack",
        sample_message(),
        "${SLACK_WEBHOOK_URL}",
        environ={"SLACK_WEBHOOK_URL": url},
        pacer=RecipientPacer(),
    )
    assert result.status == "delivered"
    assert result.recipient_display == "${SLACK_WEBHOOK_URL}"


def test_recipient_is_masked_for_display(slack_server: LoopbackHTTPServer) -> None:
    result = send(slack_server)
    assert result.recipient_display == f"http://127.0.0.1:{slack_server.port}/***"
    assert SLACK_TOKEN not in str(result.as_json())


@pytest.mark.serial  # wall-clock bound on the real timeout
def test_real_clock_timeout_is_bounded() -> None:
    """A webhook that accepts the connection but never answers: the read timeout ends it."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        started = time.monotonic()
        result = deliver(
            "slack",
            sample_message(),
            f"http://127.0.0.1:{listener.getsockname()[1]}{SLACK_PATH}",
            environ={"ALERTS_HTTP_READ_TIMEOUT": "0.5"},
            policy=RetryPolicy(attempts=1),
            pacer=RecipientPacer(),
        )
    finally:
        listener.close()
    assert time.monotonic() - started < 5
    assert result.status == "failed"
    assert result.retryable is True
    assert result.error_status == "timeout"
    assert SLACK_TOKEN not in result.error
