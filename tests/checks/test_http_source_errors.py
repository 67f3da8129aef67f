"""An HTTP data source that cannot be reached says why in a few words (`[Errno 111] Connection
refused`, `Read timed out`), as deliveries do, not urllib3's retry wrapper quoting its pool and
connection classes (`HTTPConnectionPool(...): Max retries exceeded ... GuardedHTTPConnection`)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.checks.conftest import Harness
from tests.conftest import closed_port as held_closed_port


@pytest.fixture
def closed_port() -> int:
    return held_closed_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def test_connection_refused_is_one_short_reason(harness: Harness, closed_port: int) -> None:
    harness.add_datasource("api", f"http://127.0.0.1:{closed_port}/health?sig=SIG")
    result = harness.run("datasource_failure", {"datasource_id": "api", "timeout_seconds": 5})
    assert result.outcome == "firing"
    assert result.summary.startswith(
        f"GET http://127.0.0.1:{closed_port}/*** failed: [Errno 111] Connection refused"
    ), result.summary
    for noise in ("Max retries", "HTTPConnectionPool", "GuardedHTTPConnection", "SIG"):
        assert noise not in result.summary


def test_no_answer_is_read_timed_out(harness: Harness, silent_port: int) -> None:
    harness.add_datasource("api", f"http://127.0.0.1:{silent_port}/health")
    result = harness.run("datasource_failure", {"datasource_id": "api", "timeout_seconds": 1})
    assert result.outcome == "firing"
    assert result.summary.startswith(
        f"GET http://127.0.0.1:{silent_port}/*** failed: Read timed out"
    ), result.summary
    assert "Max retries" not in result.summary
