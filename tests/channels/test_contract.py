"""The contract every channel keeps, run against each channel's stand-in server:
retries what is retryable, not what is permanent, honours Retry-After, leaks no secret."""

from __future__ import annotations

import logging
import time

import pytest

from datamantri_alerts.channels.retry import DeliveryResult, RecipientPacer, RetryPolicy, deliver
from tests.channels.conftest import ALL_SECRETS, FakeTime, Harness, apprise_url, sample_message

NO_JITTER = RetryPolicy(attempts=3, initial_delay=1.0, multiplier=2.0, jitter=0.0)


def send(
    harness: Harness,
    fake_time: FakeTime,
    pacer: RecipientPacer,
    policy: RetryPolicy = NO_JITTER,
    **message: object,
) -> DeliveryResult:
    return deliver(
        harness.name,
        sample_message(**message),
        harness.recipient,
        environ=harness.environ,
        policy=policy,
        sleep=fake_time.sleep,
        monotonic=fake_time.monotonic,
        pacer=pacer,
    )


def test_delivers(harness: Harness, fake_time: FakeTime, pacer: RecipientPacer) -> None:
    result = send(harness, fake_time, pacer)
    assert result.status == "delivered", result.error
    assert result.attempts == 1
    assert result.error is None
    assert harness.delivered() == 1
    assert fake_time.sleeps == []


def test_transient_failures_are_retried_with_backoff(
    harness: Harness, fake_time: FakeTime, pacer: RecipientPacer
) -> None:
    harness.fail_transient(2)
    result = send(harness, fake_time, pacer)
    assert result.status == "delivered", result.error
    assert result.attempts == 3
    assert harness.attempts() == 3
    assert harness.delivered() == 1
    # Exponential backoff without jitter: 1 s then 2 s.
    assert fake_time.sleeps == [1.0, 2.0]
    assert result.waits == (1.0, 2.0)


def test_gives_up_after_the_configured_attempts(
    harness: Harness, fake_time: FakeTime, pacer: RecipientPacer
) -> None:
    harness.fail_transient(5)
    result = send(harness, fake_time, pacer)
    assert result.status == "failed"
    assert result.attempts == 3
    assert result.retryable is True  # the next run may still deliver it
    assert result.error
    assert harness.attempts() == 3
    assert harness.delivered() == 0

    again = send(harness, fake_time, pacer, policy=RetryPolicy(attempts=2, jitter=0.0))
    assert again.attempts == 2  # attempts come from the policy


def test_permanent_failure_is_not_retried(
    harness: Harness, fake_time: FakeTime, pacer: RecipientPacer
) -> None:
    harness.fail_permanent()
    result = send(harness, fake_time, pacer)
    assert result.status == "failed"
    assert result.attempts == 1
    assert result.retryable is False
    assert harness.attempts() == 1
    assert fake_time.sleeps == []


def test_retry_after_is_honoured(
    http_harness: Harness, fake_time: FakeTime, pacer: RecipientPacer
) -> None:
    assert http_harness.retry_after is not None
    http_harness.retry_after("7")
    result = send(http_harness, fake_time, pacer)
    assert result.status == "delivered", result.error
    assert result.attempts == 2
    assert fake_time.sleeps == [7.0]


def test_retry_after_is_capped(
    http_harness: Harness, fake_time: FakeTime, pacer: RecipientPacer
) -> None:
    assert http_harness.retry_after is not None
    http_harness.retry_after("3600")
    result = send(http_harness, fake_time, pacer)
    assert result.status == "delivered", result.error
    assert fake_time.sleeps == [60.0]
    http_harness.retry_after("3600")
    capped = RetryPolicy(jitter=0.0, retry_after_cap=5.0)
    send(http_harness, fake_time, pacer, policy=capped)
    assert fake_time.sleeps[-1] == 5.0


def test_retry_waits_in_real_time_for_retry_after(
    http_harness: Harness, pacer: RecipientPacer
) -> None:
    assert http_harness.retry_after is not None and http_harness.arrivals is not None
    http_harness.retry_after("1")
    started = time.monotonic()
    result = deliver(
        http_harness.name,
        sample_message(),
        http_harness.recipient,
        environ=http_harness.environ,
        policy=NO_JITTER,
        pacer=pacer,
    )
    assert result.status == "delivered", result.error
    first, second = http_harness.arrivals()
    assert second - first >= 1.0
    assert time.monotonic() - started >= 1.0


def test_smtp_4xx_waits_the_backoff(
    email_harness: Harness, fake_time: FakeTime, pacer: RecipientPacer
) -> None:
    """SMTP has no Retry-After: a 4xx reply waits the policy's backoff instead."""
    email_harness.fail_transient(1)
    result = send(email_harness, fake_time, pacer, policy=RetryPolicy(initial_delay=3.0, jitter=0))
    assert result.status == "delivered", result.error
    assert fake_time.sleeps == [3.0]


def test_jitter_spreads_the_waits(
    harness: Harness, fake_time: FakeTime, pacer: RecipientPacer
) -> None:
    harness.fail_transient(1)
    policy = RetryPolicy(initial_delay=1.0, jitter=0.5)
    result = send(harness, fake_time, pacer, policy=policy)
    assert result.status == "delivered", result.error
    (wait,) = fake_time.sleeps
    assert 1.0 <= wait <= 1.5


def test_no_secret_in_error_or_log(
    harness: Harness,
    fake_time: FakeTime,
    pacer: RecipientPacer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The stand-in answers with an error that echoes the channel's secret; the result and
    every log line must not carry it."""
    caplog.set_level(logging.DEBUG, logger="datamantri_alerts")
    harness.echo_secret()
    result = send(harness, fake_time, pacer)
    assert result.status == "failed"
    assert result.error
    texts = [result.error, result.recipient_display, caplog.text]
    for secret in ALL_SECRETS:
        for text in texts:
            assert secret not in text
    assert "failed" in caplog.text  # the failure was logged, just without the secret


def test_no_secret_when_the_server_is_unreachable(
    harness: Harness,
    fake_time: FakeTime,
    pacer: RecipientPacer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Connection errors name the host, never the webhook path or a credential."""
    from tests.conftest import closed_port

    caplog.set_level(logging.DEBUG, logger="datamantri_alerts")
    closed = closed_port()
    environ = dict(harness.environ)
    recipient = harness.recipient
    if harness.name == "email":
        environ["SMTP_PORT"] = str(closed)
    elif harness.name == "whatsapp":
        environ["TWILIO_API_BASE_URL"] = f"http://127.0.0.1:{closed}"
    elif harness.name == "pagerduty":
        environ["PAGERDUTY_EVENTS_URL"] = f"http://127.0.0.1:{closed}/v2/enqueue"
    elif harness.name == "apprise":
        environ["APPRISE_URL"] = apprise_url(closed)
    else:
        recipient = recipient.replace(recipient.split("/")[2], f"127.0.0.1:{closed}")
    result = deliver(
        harness.name,
        sample_message(),
        recipient,
        environ=environ,
        policy=RetryPolicy(attempts=2, jitter=0),
        sleep=fake_time.sleep,
        monotonic=fake_time.monotonic,
        pacer=pacer,
    )
    assert result.status == "failed"
    assert result.retryable is True
    assert result.attempts == 2
    assert "refused" in result.error.lower() or "connect" in result.error.lower()
    for secret in ALL_SECRETS:
        assert secret not in result.error
        assert secret not in caplog.text


def test_missing_settings_fail_without_an_attempt(harness: Harness, pacer: RecipientPacer) -> None:
    from datamantri_alerts.channels import get_channel

    channel = get_channel(harness.name)
    environ: dict[str, str] = {}
    recipient = harness.recipient
    if channel.fallback_env:  # the webhook channels' settings are optional; the URL is not
        recipient = "${" + channel.fallback_env + "}"
    result = deliver(harness.name, sample_message(), recipient, environ=environ, pacer=pacer)
    assert result.status == "failed"
    assert result.attempts == 0
    assert result.retryable is False
    assert "is not set" in result.error
    assert harness.attempts() == 0


def test_long_messages_are_truncated_not_refused(
    harness: Harness, fake_time: FakeTime, pacer: RecipientPacer
) -> None:
    huge = {
        "rows": [{"id": i, "payload": "x" * 200} for i in range(2000)],
        "note": "y" * 100_000,
    }
    result = send(
        harness,
        fake_time,
        pacer,
        alert_name="A" * 500,
        description="d" * 20_000,
        summary="s" * 20_000,
        details=huge,
    )
    assert result.status == "delivered", result.error
    assert harness.delivered() == 1


@pytest.mark.parametrize("state", ["FIRING", "REPEAT", "RESOLVED", "TEST"])
@pytest.mark.parametrize("severity", ["info", "warning", "critical"])
def test_every_state_and_severity_renders(
    harness: Harness, fake_time: FakeTime, pacer: RecipientPacer, state: str, severity: str
) -> None:
    result = send(harness, fake_time, pacer, state=state, severity=severity)
    assert result.status == "delivered", result.error
