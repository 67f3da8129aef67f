"""Webhooks and the Twilio API go through the destination policy: private targets are refused."""

from __future__ import annotations

import pytest

from datamantri_alerts.channels.retry import RecipientPacer, RetryPolicy, deliver
from tests.channels.conftest import (
    SLACK_PATH,
    WHATSAPP_TO,
    LoopbackHTTPServer,
    sample_message,
    twilio_environ,
)
from tests.net.fixtures import FakeDNS

REFUSED = [
    "https://10.1.2.3/hooks/abc",
    "https://172.16.0.9/hooks/abc",
    "https://192.168.1.20/hooks/abc",
    "https://169.254.169.254/latest/meta-data",
    "https://100.100.100.200/hooks/abc",
    "https://[fe80::1]/hooks/abc",
    "https://[::ffff:10.0.0.1]/hooks/abc",
    "https://[::ffff:100.100.100.200]/hooks/abc",
    "https://[64:ff9b::a9fe:a9fe]/hooks/abc",
    "https://[2002:a9fe:a9fe::1]/hooks/abc",
    "https://0.0.0.0/hooks/abc",
]


@pytest.mark.parametrize("url", REFUSED)
@pytest.mark.parametrize("channel", ["slack", "teams", "webhook"])
def test_private_destinations_refused_without_sending(
    channel: str, url: str, connects: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALERTS_ALLOW_PRIVATE_WEBHOOKS", raising=False)
    result = deliver(
        channel,
        sample_message(),
        url,
        environ={},
        policy=RetryPolicy(attempts=3, initial_delay=0, jitter=0),
    )
    assert result.status == "failed"
    assert result.attempts == 1 and result.retryable is False
    error = result.error or ""
    assert "destination policy refused webhook connection" in error
    assert "ALERTS_ALLOW_PRIVATE_WEBHOOKS" in error
    assert "hooks/abc" not in error and "meta-data" not in error  # the path is not echoed
    assert connects == []


def test_metadata_behind_carrier_grade_nat_refused(connects: list[str]) -> None:
    """The issue's example: 100.100.100.200 (a cloud metadata service) is not a webhook."""
    result = deliver(
        "slack",
        sample_message(),
        "https://100.100.100.200/services/T/B/x",
        environ={},
        policy=RetryPolicy(attempts=1),
    )
    assert result.status == "failed" and result.retryable is False
    assert "100.100.100.200: a carrier-grade NAT address (100.64.0.0/10)" in (result.error or "")
    assert connects == []


def test_hostname_resolving_to_metadata_address_refused(
    fake_dns: FakeDNS, connects: list[str]
) -> None:
    fake_dns.add("hooks.internal.example", ["169.254.169.254"])
    result = deliver(
        "teams",
        sample_message(),
        "https://hooks.internal.example/services/T/B/x",
        environ={},
        policy=RetryPolicy(attempts=1),
    )
    error = result.error or ""
    assert "hooks.internal.example (169.254.169.254): a link-local address" in error
    assert result.retryable is False and connects == []


def test_loopback_allowed(slack_server: LoopbackHTTPServer) -> None:
    result = deliver(
        "slack",
        sample_message(),
        slack_server.url(SLACK_PATH),
        environ={},
        policy=RetryPolicy(attempts=1),
    )
    assert result.status == "delivered", result.error


def test_override_allows_private_webhooks(
    slack_server: LoopbackHTTPServer, monkeypatch: pytest.MonkeyPatch, connects: list[str]
) -> None:
    """https://0.0.0.0 (Linux connects it to loopback) is refused by default; with the opt-out
    it is connected to (and the TLS handshake with the plain-HTTP stand-in then fails)."""
    url = f"https://0.0.0.0:{slack_server.port}{SLACK_PATH}"
    monkeypatch.delenv("ALERTS_ALLOW_PRIVATE_WEBHOOKS", raising=False)
    refused = deliver("slack", sample_message(), url, policy=RetryPolicy(attempts=1))
    assert refused.status == "failed" and "destination policy" in (refused.error or "")
    assert connects == []
    monkeypatch.setenv("ALERTS_ALLOW_PRIVATE_DATASOURCES", "1")  # not the webhooks' opt-out
    again = deliver("slack", sample_message(), url, policy=RetryPolicy(attempts=1))
    assert "destination policy" in (again.error or "") and connects == []
    monkeypatch.setenv("ALERTS_ALLOW_PRIVATE_WEBHOOKS", "1")
    allowed = deliver("slack", sample_message(), url, policy=RetryPolicy(attempts=1))
    assert allowed.status == "failed" and "destination policy" not in (allowed.error or "")
    assert connects == ["0.0.0.0"]
    assert len(slack_server.requests) == 0  # the handshake failed, nothing was posted


def test_twilio_base_url_goes_through_the_policy(
    twilio_server: LoopbackHTTPServer, connects: list[str]
) -> None:
    for base in (
        "https://169.254.169.254",
        "https://100.100.100.200",
        "https://[::ffff:a9fe:a9fe]",
    ):
        environ = {**twilio_environ(twilio_server), "TWILIO_API_BASE_URL": base}
        result = deliver(
            "whatsapp",
            sample_message(),
            WHATSAPP_TO,
            environ=environ,
            policy=RetryPolicy(attempts=3, initial_delay=0, jitter=0),
            pacer=RecipientPacer(),
        )
        assert result.status == "failed" and result.retryable is False, result.error
        assert result.attempts == 1
        assert "destination policy refused webhook connection" in (result.error or "")
    assert connects == []
    assert twilio_server.requests == []
    ok = deliver(
        "whatsapp",
        sample_message(),
        WHATSAPP_TO,
        environ=twilio_environ(twilio_server),
        policy=RetryPolicy(attempts=1),
        pacer=RecipientPacer(),
    )
    assert ok.status == "delivered", ok.error
