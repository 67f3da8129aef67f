"""Email against real aiosmtpd servers: STARTTLS + AUTH with a private CA, implicit TLS, plain."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy

import pytest

from datamantri_alerts.channels import delivery_targets
from datamantri_alerts.channels.retry import RecipientPacer, RetryPolicy, deliver
from tests.channels.conftest import (
    EMAIL_TO,
    SMTP_PASSWORD,
    SMTP_USER,
    FakeTime,
    SMTPServer,
    sample_message,
)

ONE_ATTEMPT = RetryPolicy(attempts=1)


def send_email(environ: dict[str, str], recipient: str = EMAIL_TO, **message: object) -> object:
    return deliver(
        "email", sample_message(**message), recipient, environ=environ, policy=ONE_ATTEMPT
    )


def test_starttls_with_auth_delivers_multipart(smtp_starttls: SMTPServer) -> None:
    result = send_email(smtp_starttls.environ)
    assert result.status == "delivered", result.error
    (sent,) = smtp_starttls.recorder.messages
    assert sent.tls is True  # STARTTLS happened before anything else
    assert sent.login == SMTP_USER
    assert sent.mail_from == "alerts@example.com"
    assert sent.rcpt_tos == [EMAIL_TO]

    email = message_from_bytes(sent.content, policy=policy.default)
    assert email.get_content_type() == "multipart/alternative"
    assert email["To"] == EMAIL_TO
    assert email["From"] == "Data Alerts <alerts@example.com>"
    assert email["Auto-Submitted"] == "auto-generated"
    assert email["Subject"].startswith("[FIRING] CRITICAL: Nightly ETL failed")
    text = email.get_body(("plain",)).get_content()
    html = email.get_body(("html",)).get_content()
    for part in (text, html):
        assert "Nightly ETL failed" in part
        assert "The nightly ETL must not fail" in part
        assert "pipeline_failure" in part.replace("Pipeline failure", "")
        assert "critical" in part
        assert "FIRING" in part
        assert "2024-08-01T06:30:00+00:00" in part
        assert "etl-runner-1" in part
        assert "xyz-789" in part
    assert "relation &#34;orders&#34; does not exist" in html  # escaped in HTML
    assert 'relation "orders" does not exist' in text


def test_implicit_tls(smtp_implicit_tls: SMTPServer) -> None:
    result = send_email(smtp_implicit_tls.environ, state="RESOLVED")
    assert result.status == "delivered", result.error
    (sent,) = smtp_implicit_tls.recorder.messages
    assert sent.tls is True
    assert sent.login == SMTP_USER
    email = message_from_bytes(sent.content, policy=policy.default)
    assert email["Subject"].startswith("[RESOLVED]")


def test_plain_relay_without_auth(smtp_plain: SMTPServer) -> None:
    result = send_email(smtp_plain.environ, state="TEST")
    assert result.status == "delivered", result.error
    (sent,) = smtp_plain.recorder.messages
    assert sent.tls is False
    assert sent.login is None


def test_certificate_is_verified(smtp_starttls: SMTPServer) -> None:
    environ = {k: v for k, v in smtp_starttls.environ.items() if k != "SMTP_CA_BUNDLE"}
    result = send_email(environ)
    assert result.status == "failed"
    assert result.retryable is False
    assert "certificate" in result.error and "SMTP_CA_BUNDLE" in result.error
    assert smtp_starttls.recorder.messages == []


def test_wrong_password_is_permanent(smtp_starttls: SMTPServer) -> None:
    environ = {**smtp_starttls.environ, "SMTP_PASSWORD": "not-the-password"}
    result = deliver("email", sample_message(), EMAIL_TO, environ=environ)
    assert result.status == "failed"
    assert result.attempts == 1  # auth failures are not retried
    assert result.retryable is False
    assert "authentication failed" in result.error
    assert "535" in result.error
    assert "not-the-password" not in result.error


def test_starttls_missing_is_refused(smtp_plain: SMTPServer) -> None:
    environ = {k: v for k, v in smtp_plain.environ.items() if k != "SMTP_SECURITY"}
    result = send_email(environ)
    assert result.status == "failed"
    assert result.retryable is False
    assert "STARTTLS" in result.error
    assert smtp_plain.recorder.messages == []


def test_one_message_per_recipient_and_partial_refusal(smtp_starttls: SMTPServer) -> None:
    """Two addresses, one refused: each gets its own outcome; the good one is delivered once."""
    smtp_starttls.recorder.refused["gone@example.com"] = "550 5.1.1 User unknown"
    targets = delivery_targets(["email"], {"email": ["gone@example.com", EMAIL_TO]})
    results = [
        deliver(
            "email",
            sample_message(),
            recipient,
            environ=smtp_starttls.environ,
            policy=RetryPolicy(jitter=0),
            sleep=FakeTime().sleep,
        )
        for _name, recipient in targets
    ]
    refused, accepted = results
    assert refused.recipient == "gone@example.com"
    assert refused.status == "failed"
    assert refused.retryable is False
    assert refused.attempts == 1
    assert "gone@example.com" in refused.error and "550" in refused.error
    assert accepted.status == "delivered"
    assert [m.rcpt_tos for m in smtp_starttls.recorder.messages] == [[EMAIL_TO]]


def test_4xx_is_transient(smtp_starttls: SMTPServer) -> None:
    smtp_starttls.recorder.rcpt_replies.append("452 4.2.2 Mailbox full")
    result = send_email(smtp_starttls.environ)
    assert result.status == "failed"
    assert result.retryable is True
    assert result.error_status == 452


@pytest.fixture
def hangup_server() -> Iterator[int]:
    """Accepts connections and closes them at once: a relay that drops the session."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    stop.set()
    listener.close()


def test_disconnect_is_transient(hangup_server: int) -> None:
    environ = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(hangup_server),
        "SMTP_SECURITY": "none",
        "SMTP_FROM": "alerts@example.com",
    }
    fake = FakeTime()
    result = deliver(
        "email",
        sample_message(),
        EMAIL_TO,
        environ=environ,
        policy=RetryPolicy(jitter=0),
        sleep=fake.sleep,
        monotonic=fake.monotonic,
        pacer=RecipientPacer(),
    )
    assert result.status == "failed"
    assert result.retryable is True
    assert result.attempts == 3
    assert "disconnected" in result.error or "closed" in result.error


def test_connection_timeout_is_bounded() -> None:
    """A server that accepts but never speaks: the SMTP timeout ends the attempt."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        environ = {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(listener.getsockname()[1]),
            "SMTP_SECURITY": "none",
            "SMTP_FROM": "alerts@example.com",
            "SMTP_TIMEOUT": "0.5",
        }
        result = send_email(environ)
    finally:
        listener.close()
    assert result.status == "failed"
    assert result.retryable is True
    assert result.error_status == "timeout"
    assert result.duration_ms < 5000


def test_no_password_over_plaintext_to_remote_hosts() -> None:
    """With SMTP_SECURITY=none the password is refused before any connection is made."""
    environ = {
        "SMTP_HOST": "smtp.example.com",
        "SMTP_SECURITY": "none",
        "SMTP_USERNAME": SMTP_USER,
        "SMTP_PASSWORD": SMTP_PASSWORD,
        "SMTP_FROM": "alerts@example.com",
        "SMTP_TIMEOUT": "1",
    }
    result = send_email(environ)
    assert result.status == "failed"
    assert result.retryable is False
    assert "without TLS" in result.error
    assert result.duration_ms < 500


def test_settings_defaults_and_secret_fields() -> None:
    from datamantri_alerts.channels.email import EmailConfig

    assert EmailConfig.secret_fields() == ["password"]
    config = EmailConfig.from_env(
        {"SMTP_HOST": "smtp.example.com", "SMTP_PASSWORD": "pw-1234", "SMTP_FROM": "a@b.example"}
    )
    assert (config.effective_security, config.effective_port) == ("starttls", 587)
    assert config.secret_values() == ["pw-1234"]
    assert "pw-1234" not in repr(config)
    ssl_config = EmailConfig.from_env(
        {"SMTP_HOST": "smtp.example.com", "SMTP_PORT": "465", "SMTP_FROM": "a@b.example"}
    )
    assert ssl_config.effective_security == "ssl"
    forced = EmailConfig.from_env(
        {"SMTP_HOST": "h", "SMTP_SECURITY": "SSL", "SMTP_FROM": "a@b.example"}
    )
    assert (forced.effective_security, forced.effective_port) == ("ssl", 465)
    assert EmailConfig.problems({"SMTP_HOST": "h"}) == [
        "SMTP_FROM is not set (and SMTP_USERNAME is not an address)"
    ]
    assert EmailConfig.problems({"SMTP_HOST": "h", "SMTP_FROM": "a@b", "SMTP_PORT": "x"}) == [
        "SMTP_PORT: Input should be a valid integer, unable to parse string as an integer"
    ]
