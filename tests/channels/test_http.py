"""The shared HTTP helper: classification, Retry-After parsing, redaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from datamantri_alerts.channels.base import DeliveryError
from datamantri_alerts.channels.http import HttpReply, parse_retry_after, raise_for_reply

NOW = datetime(2024, 8, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        ("0", 0.0),
        ("2.5", 2.5),
        ("-3", 0.0),
        ("Thu, 01 Aug 2024 12:00:30 GMT", 30.0),
        ("Thu, 01 Aug 2024 11:59:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (408, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (410, False),
        (301, False),
    ],
)
def test_classification(status: int, retryable: bool) -> None:
    with pytest.raises(DeliveryError) as failed:
        raise_for_reply(HttpReply(status, "nope", {"retry-after": "4"}))
    assert failed.value.retryable is retryable
    assert failed.value.status == status
    assert (failed.value.retry_after == 4.0) is retryable


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_delivered(status: int) -> None:
    raise_for_reply(HttpReply(status, ""))


def test_error_text_is_redacted_and_short() -> None:
    url = "https://hooks.slack.com/services/T000/B000/abcdefghijklmnopqrstuvwx"
    body = f"bad request to {url} " + "z" * 1000
    with pytest.raises(DeliveryError) as failed:
        raise_for_reply(HttpReply(400, body), secrets=["abcdefghijklmnopqrstuvwx"])
    reason = failed.value.reason
    assert "abcdefghijklmnopqrstuvwx" not in reason
    assert "https://hooks.slack.com/***" in reason
    assert len(reason) < 400
