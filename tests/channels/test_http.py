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


def _raw_reply_server(head: bytes, body_chunks: int, chunk: bytes, pause: float) -> str:
    """A loopback server answering one request with head, then body_chunks x chunk."""
    import socket
    import threading
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        with conn, server:
            conn.settimeout(30)
            conn.recv(65536)
            conn.sendall(head)
            try:
                for _ in range(body_chunks):
                    conn.sendall(chunk)
                    time.sleep(pause)
            except OSError:
                pass  # the client stopped reading and closed: as intended

    threading.Thread(target=answer, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}/hook"


def test_a_huge_reply_body_is_read_only_up_to_the_limit() -> None:
    from datamantri_alerts.channels.http import REPLY_LIMIT, post_json

    url = _raw_reply_server(
        b"HTTP/1.1 500 Oops\r\nContent-Length: 50000000\r\n\r\n", 5000, b"x" * 10000, 0.0
    )
    reply = post_json(url, {"text": "hi"}, timeout=(5.0, 5.0))
    assert reply.status == 500
    assert len(reply.text) == REPLY_LIMIT


@pytest.mark.serial  # wall-clock bound on a trickling reply
def test_a_trickling_reply_body_ends_at_the_timeout() -> None:
    """One byte every 0.2 s never trips the socket's read timeout; the reply is cut at
    connect + read timeout instead of being read for minutes."""
    import time

    from datamantri_alerts.channels.http import post_json

    url = _raw_reply_server(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n", 600, b"y", 0.2)
    started = time.monotonic()
    reply = post_json(url, {"text": "hi"}, timeout=(1.0, 1.0))
    assert reply.status == 200
    assert 0 < len(reply.text) < 100
    assert time.monotonic() - started < 30  # the whole body would take 120 s


def test_a_reply_body_cut_short_keeps_what_arrived() -> None:
    from datamantri_alerts.channels.http import post_json

    url = _raw_reply_server(b"HTTP/1.1 503 Busy\r\nContent-Length: 1000\r\n\r\nbusy", 0, b"", 0.0)
    reply = post_json(url, {"text": "hi"}, timeout=(5.0, 5.0))
    assert (reply.status, reply.text) == (503, "busy")


@pytest.mark.serial  # wall-clock bound on a trickling reply
def test_a_heartbeat_reply_is_never_read() -> None:
    """A heartbeat answering 200 and then trickling (or flooding) its body does not hold the
    run: the ping ends with the status line."""
    import time

    from datamantri_alerts.net.destinations import heartbeat_policy
    from datamantri_alerts.services.heartbeat import Heartbeat

    url = _raw_reply_server(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n", 600, b"y", 0.2)
    policy = heartbeat_policy({"ALERTS_ALLOW_PRIVATE_WEBHOOKS": "1"})
    beat = Heartbeat(url, timeout=1.0, policy=policy)
    started = time.monotonic()
    assert beat.start() is True
    assert time.monotonic() - started < 5  # the whole body would take 120 s
