"""The generic webhook channel: documented body, HMAC signature, Alertmanager v4 format."""

from __future__ import annotations

import json
import time

import pytest

from datamantri_alerts.channels import RecipientError, get_channel
from datamantri_alerts.channels.retry import RecipientPacer, RetryPolicy, deliver
from datamantri_alerts.channels.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    verify,
)
from tests.channels.conftest import (
    WEBHOOK_PATH,
    WEBHOOK_SECRET,
    WEBHOOK_TOKEN,
    LoopbackHTTPServer,
    Reply,
    sample_message,
    webhook_recipient,
)

ONCE = RetryPolicy(attempts=1, jitter=0)


def _send(recipient: str, environ: dict[str, str], **message: object):  # type: ignore[no-untyped-def]
    return deliver(
        "webhook",
        sample_message(**message),
        recipient,
        environ=environ,
        policy=ONCE,
        pacer=RecipientPacer(),
    )


def test_signed_body_verifies_at_the_receiver(webhook_server: LoopbackHTTPServer) -> None:
    url = webhook_server.url(WEBHOOK_PATH)
    result = _send(webhook_recipient(url), {"WEBHOOK_SECRET": WEBHOOK_SECRET}, episode_id=41)
    assert result.status == "delivered", result.error
    (request,) = webhook_server.requests
    assert verify(request.body, request.headers, WEBHOOK_SECRET, now=time.time())
    assert not verify(request.body, request.headers, "another-secret", now=time.time())
    assert not verify(request.body + b" ", request.headers, WEBHOOK_SECRET, now=time.time())
    # A replayed request is refused once the timestamp is older than the tolerance.
    assert not verify(request.body, request.headers, WEBHOOK_SECRET, now=time.time() + 301)
    body = request.json()
    assert body["event"] == "firing" and body["state"] == "FIRING"
    assert body["alert"] == {
        "id": 7,
        "name": "Nightly ETL failed",
        "description": "The nightly ETL must not fail",
        "type": "pipeline_failure",
    }
    assert body["labels"]["alertname"] == "Nightly ETL failed"
    assert body["labels"]["severity"] == "critical"
    assert body["episode_id"] == 41
    assert body["times"]["at"] == "2024-08-01T06:30:00Z"
    assert body["details"]["pipeline_id"] == "xyz-789"
    assert "://" not in body["text"]  # link-free
    assert body["text"].startswith("[FIRING] Nightly ETL failed (critical)")


def test_signature_is_over_timestamp_and_body() -> None:
    headers = sign(b'{"a":1}', "s3cret", 1_700_000_000)
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    # Reference value: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
    import hashlib
    import hmac

    expected = hmac.new(b"s3cret", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"v1={expected}"


def test_wrong_secret_is_refused_by_the_receiver(webhook_server: LoopbackHTTPServer) -> None:
    url = webhook_server.url(WEBHOOK_PATH)
    result = _send(webhook_recipient(url), {"WEBHOOK_SECRET": "not-the-receivers-secret"})
    assert result.status == "failed"
    assert result.error_status == 401 and result.retryable is False
    assert "not-the-receivers-secret" not in (result.error or "")


def test_unsigned_recipient_sends_no_signature() -> None:
    server = LoopbackHTTPServer(Reply(200, "")).start()
    try:
        result = _send(server.url("/plain"), {})
        assert result.status == "delivered", result.error
        (request,) = server.requests
        assert SIGNATURE_HEADER not in request.headers
        assert request.json()["version"] == "1"
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("state", "status", "ends_zero"),
    [("FIRING", "firing", True), ("REPEAT", "firing", True), ("RESOLVED", "resolved", False)],
)
def test_alertmanager_format(state: str, status: str, ends_zero: bool) -> None:
    from datetime import UTC, datetime

    server = LoopbackHTTPServer(Reply(200, "")).start()
    try:
        recipient = json.dumps({"format": "alertmanager", "url": server.url("/am")})
        triggered = datetime(2024, 8, 1, 6, 0, tzinfo=UTC)
        result = _send(recipient, {}, state=state, episode_id=5, triggered_at=triggered)
        assert result.status == "delivered", result.error
        body = server.requests[0].json()
    finally:
        server.stop()
    assert body["version"] == "4"
    assert body["status"] == status
    assert body["receiver"] == "datamantri-alerts"
    assert body["truncatedAlerts"] == 0
    assert body["groupKey"] == '{}:{alertname="Nightly ETL failed"}'
    assert body["groupLabels"] == {"alertname": "Nightly ETL failed"}
    assert body["commonLabels"]["severity"] == "critical"
    assert body["commonAnnotations"]["summary"] == "last run of xyz-789 failed"
    (alert,) = body["alerts"]
    assert alert["status"] == status
    assert alert["startsAt"] == "2024-08-01T06:00:00Z"
    assert (alert["endsAt"] == "0001-01-01T00:00:00Z") is ends_zero
    assert len(alert["fingerprint"]) == 16
    assert body["externalURL"] == "" and alert["generatorURL"] == ""


def test_acknowledgement_is_an_event_natively_and_not_sent_in_alertmanager_format(
    webhook_server: LoopbackHTTPServer,
) -> None:
    """Native receivers get `event: acknowledged` with who and the note; Alertmanager's format
    has no acknowledgement, so such recipients are never queued one (and a send refuses)."""
    channel = get_channel("webhook")
    native = webhook_recipient(webhook_server.url(WEBHOOK_PATH))
    alertmanager = json.dumps({"format": "alertmanager", "url": webhook_server.url("/am")})
    assert channel.tells_acknowledgements is True
    assert channel.takes_acknowledgement(native) is True
    assert channel.takes_acknowledgement("https://example.com/hook") is True
    assert channel.takes_acknowledgement(alertmanager) is False

    ack = {
        "state": "ACKNOWLEDGED",
        "episode_id": 41,
        "summary": "acknowledged by alice: on it",
        "details": {"acknowledged_by": "alice", "note": "on it"},
    }
    result = _send(native, {"WEBHOOK_SECRET": WEBHOOK_SECRET}, **ack)
    assert result.status == "delivered", result.error
    body = webhook_server.requests[0].json()
    assert (body["event"], body["state"]) == ("acknowledged", "ACKNOWLEDGED")
    assert body["episode_id"] == 41
    assert body["details"] == {"acknowledged_by": "alice", "note": "on it"}
    assert "acknowledged by alice: on it" in body["text"]

    refused = _send(alertmanager, {}, **ack)
    assert refused.status == "failed" and refused.retryable is False
    assert "no acknowledgement" in (refused.error or "")
    assert len(webhook_server.requests) == 1  # nothing reached the Alertmanager receiver


def test_fingerprint_is_stable_per_episode() -> None:
    from datamantri_alerts.channels.webhook import build_alertmanager

    first = build_alertmanager(sample_message(episode_id=1, state="FIRING"))
    repeat = build_alertmanager(sample_message(episode_id=1, state="REPEAT"))
    other = build_alertmanager(sample_message(episode_id=2, state="FIRING"))
    fingerprint = first["alerts"][0]["fingerprint"]
    assert repeat["alerts"][0]["fingerprint"] == fingerprint
    assert other["alerts"][0]["fingerprint"] != fingerprint


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"url": "https://h.example/x", "secret": "literal-secret"}, "${ENV_VAR}"),
        ({"url": "https://h.example/x", "format": "slack"}, "format must be one of"),
        ({"url": "https://h.example/x", "headers": {}}, "unknown webhook field"),
        ({"secret": "${S}"}, "webhook URL"),
        ("http://hooks.example.com/x", "plain http"),
        (42, "expected a URL"),
    ],
)
def test_bad_recipients_are_refused(value: object, problem: str) -> None:
    with pytest.raises(RecipientError) as info:
        get_channel("webhook").normalize_recipients(value)
    assert problem in str(info.value)
    assert "literal-secret" not in str(info.value)


def test_recipients_fan_out_and_mask() -> None:
    channel = get_channel("webhook")
    value = channel.normalize_recipients(
        [
            f"https://a.example{WEBHOOK_PATH}",
            {"url": f"https://b.example{WEBHOOK_PATH}", "secret": "${S}", "format": "alertmanager"},
        ]
    )
    plain, signed = channel.recipient_list(value)
    assert plain == f"https://a.example{WEBHOOK_PATH}"
    assert json.loads(signed)["format"] == "alertmanager"
    assert channel.mask_recipient(plain) == "https://a.example/***"
    assert channel.mask_recipient(signed) == "https://b.example/*** (signed, alertmanager)"

    from datamantri_alerts.services.masking import recipients_for_display, recipients_for_export

    shown = json.dumps(recipients_for_display({"webhook": value}))
    exported = json.dumps(recipients_for_export({"webhook": value}, show_secrets=False))
    for text in (shown, exported):
        assert WEBHOOK_TOKEN not in text
    assert "${S}" in shown and "alertmanager" in shown
    # A literal URL in the list: the value is exported as <redacted> as a whole, which sync
    # reads as "keep the stored value".
    assert recipients_for_export({"webhook": value}, show_secrets=False) == {
        "webhook": "<redacted>"
    }
    only_refs = [{"url": "${HOOK_URL}", "secret": "${S}", "format": "alertmanager"}]
    assert recipients_for_export({"webhook": only_refs}, show_secrets=False) == {
        "webhook": only_refs
    }


def test_secret_value_never_appears_when_a_receiver_echoes_it(
    webhook_server: LoopbackHTTPServer,
) -> None:
    webhook_server.script(Reply(500, f"boom {WEBHOOK_SECRET} {WEBHOOK_TOKEN}"))
    url = webhook_server.url(WEBHOOK_PATH)
    result = _send(webhook_recipient(url), {"WEBHOOK_SECRET": WEBHOOK_SECRET})
    assert result.status == "failed" and result.retryable
    assert WEBHOOK_SECRET not in (result.error or "")
    assert WEBHOOK_TOKEN not in (result.error or "") + result.recipient_display
