"""WhatsApp: the unmodified twilio client against a fake Messages API on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from datamantri_alerts.channels.retry import RecipientPacer, RetryPolicy, deliver
from tests.channels.conftest import (
    TWILIO_FROM,
    TWILIO_SID,
    TWILIO_TOKEN,
    WHATSAPP_TO,
    FakeTime,
    LoopbackHTTPServer,
    sample_message,
    twilio_environ,
    twilio_error,
)


def send(server: LoopbackHTTPServer, environ: dict[str, str] | None = None, **message: object):
    return deliver(
        "whatsapp",
        sample_message(**message),
        WHATSAPP_TO,
        environ=environ or twilio_environ(server),
        policy=RetryPolicy(attempts=1),
        pacer=RecipientPacer(),
    )


def test_free_form_body(twilio_server: LoopbackHTTPServer) -> None:
    result = send(twilio_server)
    assert result.status == "delivered", result.error
    (request,) = twilio_server.requests
    assert request.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert request.headers["User-Agent"].startswith("twilio-python/")
    form = request.form()
    assert form["To"] == f"whatsapp:{WHATSAPP_TO}"
    assert form["From"] == f"whatsapp:{TWILIO_FROM}"
    assert "ContentSid" not in form
    body = form["Body"]
    for expected in (
        "[FIRING] Nightly ETL failed",
        "CRITICAL",
        "The nightly ETL must not fail",
        "last run of xyz-789 failed",
        "2024-08-01T06:30:00+00:00",
        "etl-runner-1",
    ):
        assert expected in body


def test_body_is_cut_to_1600_characters(twilio_server: LoopbackHTTPServer) -> None:
    result = send(twilio_server, details={"rows": ["x" * 100] * 200})
    assert result.status == "delivered", result.error
    body = twilio_server.requests[-1].form()["Body"]
    # At most 1600; the cut drops whitespace before the marker and closes the details block.
    assert 1590 <= len(body) <= 1600
    assert body.endswith("… [truncated]```")
    assert body.count("```") == 2


def test_approved_template_with_content_variables(twilio_server: LoopbackHTTPServer) -> None:
    environ = {
        **twilio_environ(twilio_server),
        "TWILIO_WHATSAPP_CONTENT_SID": "HX" + "a" * 32,
        "TWILIO_WHATSAPP_RESOLVED_CONTENT_SID": "HX" + "b" * 32,
    }
    assert send(twilio_server, environ, summary="line one\nline  two").status == "delivered"
    firing = twilio_server.requests[-1].form()
    assert firing["ContentSid"] == "HX" + "a" * 32
    assert "Body" not in firing
    assert json.loads(firing["ContentVariables"]) == {
        "1": "Nightly ETL failed",
        "2": "FIRING",
        "3": "critical",
        "4": "line one line two",  # WhatsApp refuses newlines in template variables
        "5": "2024-08-01T06:30:00+00:00",
        "6": "etl-runner-1",
    }
    assert send(twilio_server, environ, state="RESOLVED").status == "delivered"
    resolved = twilio_server.requests[-1].form()
    assert resolved["ContentSid"] == "HX" + "b" * 32
    assert json.loads(resolved["ContentVariables"])["2"] == "RESOLVED"


def test_resolved_uses_the_main_template_without_a_resolved_one(
    twilio_server: LoopbackHTTPServer,
) -> None:
    environ = {**twilio_environ(twilio_server), "TWILIO_WHATSAPP_CONTENT_SID": "HX" + "c" * 32}
    assert send(twilio_server, environ, state="RESOLVED").status == "delivered"
    assert twilio_server.requests[-1].form()["ContentSid"] == "HX" + "c" * 32


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (400, 21211, False),
        (400, 21608, False),
        (401, 20003, False),
        (400, 63016, False),
        (400, 21610, False),
        (429, 20429, True),
        (500, 20500, True),
        (503, None, True),
    ],
)
def test_twilio_errors_are_classified(
    twilio_server: LoopbackHTTPServer, status: int, code: int | None, retryable: bool
) -> None:
    twilio_server.script(twilio_error(status, code or 0, "something went wrong"))
    fake = FakeTime()
    result = deliver(
        "whatsapp",
        sample_message(),
        WHATSAPP_TO,
        environ=twilio_environ(twilio_server),
        policy=RetryPolicy(attempts=2, jitter=0),
        sleep=fake.sleep,
        monotonic=fake.monotonic,
        pacer=RecipientPacer(),
    )
    if retryable:
        assert result.status == "delivered"  # the retry went through
        assert result.attempts == 2
    else:
        assert result.status == "failed"
        assert result.retryable is False
        assert result.attempts == 1
        assert f"Twilio error {code}" in result.error
        assert "something went wrong" in result.error


def test_outside_the_24_hour_window_says_what_to_do(twilio_server: LoopbackHTTPServer) -> None:
    twilio_server.script(twilio_error(400, 63016, "Failed to send freeform message"))
    result = send(twilio_server)
    assert "TWILIO_WHATSAPP_CONTENT_SID" in result.error


def test_wrong_token_is_rejected_by_the_stand_in(twilio_server: LoopbackHTTPServer) -> None:
    """The fake checks Basic auth as Twilio does: a wrong token is 20003, permanent."""
    environ = {**twilio_environ(twilio_server), "TWILIO_AUTH_TOKEN": "wrong-token-1234567"}
    result = send(twilio_server, environ)
    assert result.status == "failed"
    assert result.error_status == 20003
    assert "wrong-token-1234567" not in result.error


def test_settings_validation() -> None:
    from datamantri_alerts.channels.whatsapp import WhatsAppConfig

    assert WhatsAppConfig.secret_fields() == ["auth_token"]
    config = WhatsAppConfig.from_env(
        {
            "TWILIO_ACCOUNT_SID": TWILIO_SID,
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886",
        }
    )
    assert config.from_number == "whatsapp:+14155238886"
    assert config.api_base_url == "https://api.twilio.com"
    assert TWILIO_TOKEN not in repr(config)
    problems = WhatsAppConfig.problems(
        {
            "TWILIO_ACCOUNT_SID": TWILIO_SID,
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "TWILIO_WHATSAPP_FROM": "+14155238886",
            "TWILIO_API_BASE_URL": "http://proxy.example.com",
        }
    )
    assert len(problems) == 1 and problems[0].startswith("TWILIO_API_BASE_URL")


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        (
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/2010-04-01/Accounts/AC1/Messages.json",
        ),
        (
            "https://api.dublin.ie1.twilio.com/2010-04-01/Accounts/AC1/Messages.json?x=1",
            "https://egress.internal/twilio",
            "https://egress.internal/twilio/2010-04-01/Accounts/AC1/Messages.json?x=1",
        ),
        ("https://example.com/other", "http://127.0.0.1:8080", "https://example.com/other"),
    ],
)
def test_base_url_rewrite(url: str, base: str, expected: str) -> None:
    from datamantri_alerts.channels.twilio_client import rebase_url

    assert rebase_url(url, base) == expected


def test_invalid_recipient_is_permanent(twilio_server: LoopbackHTTPServer) -> None:
    result = deliver(
        "whatsapp",
        sample_message(),
        "0044 7700",
        environ=twilio_environ(twilio_server),
        pacer=RecipientPacer(),
    )
    assert result.status == "failed"
    assert result.retryable is False
    assert result.attempts == 1
    assert twilio_server.requests == []


@pytest.mark.serial  # wall-clock bound on a trickling reply
def test_a_trickling_or_huge_twilio_reply_is_cut_within_the_timeout() -> None:
    """The twilio client reads a reply whole and its timeout bounds each socket read only: a
    reply sending a byte every 0.2 s (2 minutes in all) is cut within the request's timeout."""
    import time

    from tests.channels.test_http import _raw_reply_server

    head = (
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    )
    url = _raw_reply_server(head, 600, b" ", 0.2)
    environ = {
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_WHATSAPP_FROM": TWILIO_FROM,
        "TWILIO_API_BASE_URL": url.rsplit("/", 1)[0],
        "TWILIO_TIMEOUT": "1",
        "ALERTS_ALLOW_PRIVATE_WEBHOOKS": "1",
    }
    started = time.monotonic()
    result = deliver(
        "whatsapp",
        sample_message(),
        WHATSAPP_TO,
        environ=environ,
        policy=RetryPolicy(attempts=1),
        pacer=RecipientPacer(),
    )
    assert time.monotonic() - started < 10  # the whole reply would take 120 s
    assert result.status == "failed"  # 201 with a body cut short is not a Twilio message
