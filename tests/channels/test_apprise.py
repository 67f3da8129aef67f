"""The Apprise channel: an Apprise URL per recipient, masked as a whole, policy-checked."""

from __future__ import annotations

import json

import pytest

from datamantri_alerts.channels import RecipientError, get_channel
from datamantri_alerts.channels.retry import RecipientPacer, RetryPolicy, deliver
from tests.channels.conftest import APPRISE_TOKEN, LoopbackHTTPServer, apprise_url, sample_message

ONCE = RetryPolicy(attempts=1, jitter=0)


@pytest.mark.parametrize(
    ("state", "severity", "kind"),
    [
        ("FIRING", "critical", "failure"),
        ("REPEAT", "warning", "warning"),
        ("FIRING", "info", "info"),
        ("RESOLVED", "critical", "success"),
    ],
)
def test_delivers_to_a_json_endpoint(
    apprise_server: LoopbackHTTPServer, state: str, severity: str, kind: str
) -> None:
    url = apprise_url(apprise_server.port)
    result = deliver(
        "apprise",
        sample_message(state=state, severity=severity),
        "${APPRISE_URL}",
        environ={"APPRISE_URL": url},
        policy=ONCE,
        pacer=RecipientPacer(),
    )
    assert result.status == "delivered", result.error
    (request,) = apprise_server.requests
    assert request.path == f"/apprise/{APPRISE_TOKEN}"
    body = request.json()
    assert body["type"] == kind
    assert body["title"] == f"[{state}] Nightly ETL failed"
    assert "last run of xyz-789 failed" in body["message"]
    assert "pipeline_id: xyz-789" in body["message"]


def test_each_url_is_its_own_delivery(apprise_server: LoopbackHTTPServer) -> None:
    channel = get_channel("apprise")
    first, second = apprise_url(apprise_server.port), apprise_url(apprise_server.port) + "2"
    stored = channel.normalize_recipients([first, second])
    results = [
        deliver("apprise", sample_message(), target, environ={}, policy=ONCE)
        for target in channel.recipient_list(stored)
    ]
    assert [r.status for r in results] == ["delivered", "delivered"]
    assert [r.recipient_display for r in results] == ["json://***", "json://***"]
    assert len(apprise_server.requests) == 2


def test_private_destination_refused_without_connecting(
    connects: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALERTS_ALLOW_PRIVATE_WEBHOOKS", raising=False)
    result = deliver(
        "apprise",
        sample_message(),
        f"json://10.1.2.3/hooks/{APPRISE_TOKEN}",
        environ={},
        policy=RetryPolicy(attempts=3, jitter=0),
    )
    assert result.status == "failed"
    assert result.attempts == 1 and result.retryable is False
    assert "destination policy refused webhook connection to 10.1.2.3: a private address" in (
        result.error or ""
    )
    assert APPRISE_TOKEN not in (result.error or "")
    assert connects == []


def test_service_api_host_is_checked(fake_dns, connects: list[str], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A hosted service (Discord) is checked by the API host Apprise will call."""
    monkeypatch.delenv("ALERTS_ALLOW_PRIVATE_WEBHOOKS", raising=False)
    fake_dns.add("discord.com", ["169.254.169.254"])
    result = deliver(
        "apprise",
        sample_message(),
        f"discord://123456789012/{APPRISE_TOKEN}",
        environ={},
        policy=ONCE,
    )
    assert result.status == "failed"
    assert "discord.com (169.254.169.254): a link-local address" in (result.error or "")
    assert connects == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("https-ish not a url", "not an Apprise URL"),
        ("nosuchservice://abc/def", "Apprise does not accept"),
        ("", "expected an Apprise URL"),
        (["${OK}", 3], "expected an Apprise URL"),
    ],
)
def test_bad_urls_are_refused(value: object, problem: str) -> None:
    with pytest.raises(RecipientError) as info:
        get_channel("apprise").normalize_recipients(value)
    assert problem in str(info.value)


def test_url_is_masked_as_a_whole_everywhere() -> None:
    from datamantri_alerts.services.masking import recipients_for_display, recipients_for_export

    channel = get_channel("apprise")
    url = f"tgram://123456789:{APPRISE_TOKEN}/-100200300"
    assert channel.mask_recipient(url) == "tgram://***"
    assert channel.mask_recipient("${TG}") == "${TG}"
    shown = json.dumps(recipients_for_display({"apprise": [url, "${TG}"]}))
    exported = json.dumps(recipients_for_export({"apprise": [url, "${TG}"]}, show_secrets=False))
    assert APPRISE_TOKEN not in shown + exported
    assert "123456789" not in shown + exported
    assert "${TG}" in shown and json.loads(exported) == {"apprise": "<redacted>"}
    assert all(
        APPRISE_TOKEN in piece or len(piece) >= 4 for piece in channel.recipient_secrets(url)
    )
    assert APPRISE_TOKEN in channel.recipient_secrets(url)


def test_lazy_import() -> None:
    """Apprise is imported only when a message is sent or a URL validated."""
    import subprocess
    import sys

    code = (
        "import sys; from datamantri_alerts.channels import get_channel; "
        "get_channel('apprise'); get_channel('pagerduty'); get_channel('webhook'); "
        "print('apprise' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
