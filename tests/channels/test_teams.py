"""Teams against a loopback Workflows stand-in that validates the Adaptive Card 1.4 schema."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from datamantri_alerts.channels.retry import RecipientPacer, RetryPolicy, deliver
from datamantri_alerts.channels.teams import LEGACY_HINT, is_legacy_connector
from tests.channels.conftest import (
    TEAMS_PATH,
    TEAMS_SIG,
    LoopbackHTTPServer,
    Reply,
    sample_message,
    teams_payload_problems,
)

WORKFLOWS_URL = (
    "https://prod-12.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke"
    "?api-version=2016-06-01&sig=abc123"
)
LEGACY_URLS = [
    "https://outlook.office.com/webhook/a1b2c3@d4e5/IncomingWebhook/f6/0a1b",
    "https://contoso.webhook.office.com/webhookb2/a1b2@c3/IncomingWebhook/d4/e5",
]


def send(server: LoopbackHTTPServer, **message: object):
    return deliver(
        "teams",
        sample_message(**message),
        server.url(TEAMS_PATH),
        environ={},
        policy=RetryPolicy(attempts=1),
        pacer=RecipientPacer(),
    )


def card_of(payload: dict[str, Any]) -> dict[str, Any]:
    (attachment,) = payload["attachments"]
    return attachment["content"]


def test_workflows_envelope_with_a_valid_adaptive_card(
    teams_server: LoopbackHTTPServer, card_validator: Any
) -> None:
    result = send(teams_server)
    assert result.status == "delivered", result.error
    (request,) = teams_server.requests
    payload = request.json()
    assert payload["type"] == "message"
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["msteams"] == {"width": "Full"}
    schema_view = {k: v for k, v in card.items() if k != "msteams"}
    assert list(card_validator.iter_errors(schema_view)) == []

    title, text, facts = card["body"][:3]
    assert title["text"] == "[FIRING] Nightly ETL failed"
    assert title["color"] == "attention"
    assert "The nightly ETL must not fail" in text["text"]
    assert {f["title"]: f["value"] for f in facts["facts"]} == {
        "Type": "pipeline_failure",
        "Severity": "critical",
        "State": "FIRING",
        "When": "2024-08-01T06:30:00+00:00",
        "Host": "etl-runner-1",
        "Alert": "#7",
    }
    details = card["body"][-1]
    assert {f["title"]: f["value"] for f in details["facts"]}["pipeline_id"] == "xyz-789"


@pytest.mark.parametrize("status", [200, 202])
def test_200_and_202_are_delivered(teams_server: LoopbackHTTPServer, status: int) -> None:
    teams_server.script(Reply(status, "1" if status == 200 else ""))
    assert send(teams_server).status == "delivered"


@pytest.mark.parametrize(
    ("state", "severity", "colour"),
    [
        ("RESOLVED", "critical", "good"),
        ("REPEAT", "warning", "warning"),
        ("TEST", "info", "accent"),
    ],
)
def test_title_colour(
    teams_server: LoopbackHTTPServer, state: str, severity: str, colour: str
) -> None:
    assert send(teams_server, state=state, severity=severity).status == "delivered"
    assert card_of(teams_server.requests[-1].json())["body"][0]["color"] == colour


def test_payload_stays_under_28_kb_and_valid(
    teams_server: LoopbackHTTPServer, card_validator: Any
) -> None:
    details = {f"row_{i}": {"id": i, "payload": "é" * 400} for i in range(300)}
    result = send(teams_server, description="D" * 50_000, details=details)
    assert result.status == "delivered", result.error
    request = teams_server.requests[-1]
    assert len(request.body) < 28 * 1024
    assert teams_payload_problems(request.json(), card_validator) == []
    assert "… [truncated]" in json.dumps(card_of(request.json()), ensure_ascii=False)


def test_the_stand_in_refuses_invalid_cards(
    teams_server: LoopbackHTTPServer, card_validator: Any
) -> None:
    """The schema check the other tests rely on does bite."""
    import requests

    bad = {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "Txt"}]},
            }
        ],
    }
    assert teams_payload_problems(bad, card_validator)
    reply = requests.post(teams_server.url(TEAMS_PATH), json=bad, timeout=5)
    assert reply.status_code == 400


def test_errors_are_classified_and_redacted(teams_server: LoopbackHTTPServer) -> None:
    body = json.dumps({"error": {"code": "TriggerDisabled", "message": "The workflow is off"}})
    teams_server.script(Reply(404, body, content_type="application/json"))
    result = send(teams_server)
    assert result.status == "failed"
    assert result.retryable is False
    assert result.error == "HTTP 404: TriggerDisabled: The workflow is off"
    assert TEAMS_SIG not in result.error


@pytest.mark.parametrize("url", LEGACY_URLS)
def test_legacy_connector_urls_are_recognised(url: str) -> None:
    from datamantri_alerts.channels import get_channel, recipient_warnings

    assert is_legacy_connector(url)
    assert get_channel("teams").normalize_recipients(url) == url  # still accepted
    (warning,) = recipient_warnings("teams", url)
    assert "retired" in warning and "Workflows" in warning


@pytest.mark.parametrize("url", [WORKFLOWS_URL, "${TEAMS_WEBHOOK_URL}", "https://example.com/x"])
def test_workflows_urls_get_no_warning(url: str) -> None:
    from datamantri_alerts.channels import recipient_warnings

    assert not is_legacy_connector(url)
    assert recipient_warnings("teams", url) == []


def test_alert_validation_passes_the_warning_on() -> None:
    from datamantri_alerts.schema import validate_alert

    definition = validate_alert(
        {
            "name": "Teams legacy",
            "condition_type": "sql",
            "condition_config": {"datasource_id": "abc-123", "query": "select 1"},
            "channels": ["teams"],
            "recipients": {"teams": LEGACY_URLS[1]},
        }
    )
    assert any("Workflows" in warning for warning in definition.warnings)


@pytest.fixture
def connect_proxy() -> Iterator[tuple[int, list[str]]]:
    """An HTTPS proxy on 127.0.0.1 that refuses every CONNECT: requests to the real Teams hosts
    end here, so a send to a legacy URL fails without leaving the machine."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_CONNECT(self) -> None:
            seen.append(self.path)
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def test_failed_send_to_a_legacy_connector_carries_the_hint(
    connect_proxy: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, seen = connect_proxy
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    result = deliver(
        "teams",
        sample_message(),
        LEGACY_URLS[0],
        environ={},
        policy=RetryPolicy(attempts=1),
        pacer=RecipientPacer(),
    )
    assert seen == ["outlook.office.com:443"]
    assert result.status == "failed"
    assert LEGACY_HINT in result.error
    assert "a1b2c3" not in result.error  # the connector URL's token stays out


def test_legacy_hint_on_an_http_error_reply() -> None:
    from datamantri_alerts.channels.base import DeliveryError
    from datamantri_alerts.channels.http import HttpReply, raise_for_reply

    with pytest.raises(DeliveryError) as failed:
        raise_for_reply(HttpReply(410, "Connector retired"), hint=LEGACY_HINT)
    assert failed.value.reason == f"HTTP 410: Connector retired ({LEGACY_HINT})"
    assert failed.value.retryable is False
