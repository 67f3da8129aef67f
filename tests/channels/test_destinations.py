"""Webhooks to private, link-local or metadata addresses are refused at send time."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from datamantri_alerts.channels.base import DeliveryError
from datamantri_alerts.channels.destinations import check_destination
from datamantri_alerts.channels.retry import RetryPolicy, deliver
from tests.channels.conftest import SLACK_PATH, LoopbackHTTPServer, sample_message

REFUSED = [
    "https://10.1.2.3/hooks/abc",
    "https://172.16.0.9/hooks/abc",
    "https://192.168.1.20/hooks/abc",
    "https://169.254.169.254/latest/meta-data",
    "https://[fe80::1]/hooks/abc",
    "https://[::ffff:10.0.0.1]/hooks/abc",
    "https://0.0.0.0/hooks/abc",
]


@pytest.mark.parametrize("url", REFUSED)
@pytest.mark.parametrize("channel", ["slack", "teams"])
def test_private_destinations_refused_without_sending(channel: str, url: str) -> None:
    result = deliver(
        channel,
        sample_message(),
        url,
        environ={},
        policy=RetryPolicy(attempts=3, initial_delay=0, jitter=0),
    )
    assert result.status == "failed"
    assert result.attempts == 1 and result.retryable is False
    assert "refused to send" in (result.error or "")
    assert "ALERTS_ALLOW_PRIVATE_WEBHOOKS" in (result.error or "")
    assert "hooks/abc" not in (result.error or "")  # the path (token) is not echoed


def test_hostname_resolving_to_metadata_address_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def fake_dns(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "hooks.internal.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 0))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)  # the resolver's answer, not our code
    with pytest.raises(DeliveryError) as caught:
        check_destination("https://hooks.internal.example/services/T/B/x")
    assert "169.254.169.254" in caught.value.reason and "link-local" in caught.value.reason
    assert caught.value.retryable is False


def test_override_and_loopback_allowed(slack_server: LoopbackHTTPServer) -> None:
    for url in REFUSED:
        check_destination(url, {"ALERTS_ALLOW_PRIVATE_WEBHOOKS": "1"})  # no error
    for url in (
        "http://127.0.0.1:9/x",
        "http://localhost:9/x",
        "http://[::1]:9/x",
        "https://hooks.slack.com/services/T/B/x",
    ):
        check_destination(url, {})
    result = deliver(
        "slack",
        sample_message(),
        slack_server.url(SLACK_PATH),
        environ={},
        policy=RetryPolicy(attempts=1),
    )
    assert result.status == "delivered", result.error
