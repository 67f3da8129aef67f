"""The one HTTP helper of the webhook channels: post, classify the reply, redact every error.

Classification (as Alertmanager's notify helper does): 2xx delivered; 408, 429 and 5xx,
timeouts and connection errors retryable (with `Retry-After` parsed, seconds or an HTTP date);
every other status permanent. Redirects are not followed: a webhook that redirects has moved,
and following it would send the payload somewhere nobody configured. Requests go through
`net.session.guarded_session` with the webhook destination policy (`net.destinations`): a
refused address is a permanent error, and nothing is sent to it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from datamantri_alerts.channels.base import DeliveryError
from datamantri_alerts.net.destinations import DestinationRefused
from datamantri_alerts.secrets import redact_text, url_secrets

#: (connect, read) seconds.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 15.0)
#: How much of a reply body an error keeps.
DETAIL_LIMIT = 300
#: Bytes of a reply body read at most: a webhook answers in a few bytes; a hostile endpoint
#: sending gigabytes (or trickling them) is cut off here, never read to its end.
REPLY_LIMIT = 64 * 1024

_ERRNO = re.compile(r"\[Errno -?\d+\][^'\")\]]*")


@dataclass(frozen=True)
class HttpReply:
    status: int
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """One line of error text without secrets or URL tokens."""
    cleaned = redact_text(text, secrets)
    return " ".join(cleaned.split())


def encode_json(payload: Any) -> bytes:
    """The exact bytes post_json sends for payload (compact UTF-8 JSON)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def post_json(
    url: str,
    payload: Any,
    *,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    secrets: Iterable[str] = (),
    headers: Mapping[str, str] | None = None,
) -> HttpReply:
    """POST payload as JSON (bytes are sent as they are: already encoded, e.g. signed).
    Returns the reply whatever its status; raises DeliveryError only when no reply came
    (timeout, connection error, unusable URL)."""
    import requests

    from datamantri_alerts import __version__

    hidden = [*url_secrets(url), *secrets]
    body = payload if isinstance(payload, bytes) else encode_json(payload)
    send_headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": f"datamantri-alerts/{__version__}",
        **(headers or {}),
    }
    host = _host_of(url)
    from datamantri_alerts.net.destinations import webhook_policy
    from datamantri_alerts.net.session import guarded_session

    try:
        with (
            guarded_session(webhook_policy()) as session,
            session.post(
                url, data=body, headers=send_headers, timeout=timeout, stream=True
            ) as response,
        ):
            text = _read_reply(response, deadline=time.monotonic() + sum(timeout))
    except DestinationRefused as exc:
        raise refused_error(exc) from None
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise transport_error(exc, host, hidden) from None
    except requests.RequestException as exc:
        raise DeliveryError(
            f"request to {host} failed: {redact(f'{type(exc).__name__}: {exc}', hidden)}",
            retryable=False,
            status="request",
        ) from None
    return HttpReply(response.status_code, text, dict(response.headers))


def _read_reply(response: Any, *, deadline: float) -> str:
    """At most REPLY_LIMIT bytes of the body, read until `deadline` (time.monotonic()):
    whatever a slow or endless body still holds is dropped (the connection is closed)."""
    raw = read_reply_bytes(response, deadline=deadline)
    return raw.decode(response.encoding or "utf-8", errors="replace")


def read_reply_bytes(response: Any, *, deadline: float) -> bytes:
    """At most REPLY_LIMIT bytes of a streamed (`stream=True`) reply's body, read until
    `deadline` (time.monotonic()); the rest is never read."""
    from urllib3.exceptions import HTTPError

    chunks: list[bytes] = []
    size = 0
    while size < REPLY_LIMIT and time.monotonic() < deadline:
        # read1: what has arrived (at least a byte), so a trickling body cannot hold a read
        # past the deadline for more than the socket's read timeout.
        try:
            chunk = response.raw.read1(REPLY_LIMIT - size, decode_content=True)
        except (HTTPError, OSError):
            break  # the status line came; a body cut short or timed out is kept as read
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:REPLY_LIMIT]


def refused_error(exc: DestinationRefused) -> DeliveryError:
    """A destination policy refusal as a permanent DeliveryError (its text names no URL part)."""
    return DeliveryError(str(exc), retryable=False, status="destination")


def transport_error(
    exc: BaseException, peer: str, secrets: Iterable[str], *, wait: str = "the timeout"
) -> DeliveryError:
    """A timeout or connection error from requests as a retryable DeliveryError, redacted."""
    import requests

    if isinstance(exc, requests.Timeout):
        return DeliveryError(
            f"no reply from {peer} within {wait} ({exception_cause(exc, secrets)})",
            retryable=True,
            status="timeout",
        )
    return DeliveryError(
        f"could not connect to {peer} ({exception_cause(exc, secrets)})",
        retryable=True,
        status="connection",
    )


def raise_for_reply(
    reply: HttpReply,
    *,
    secrets: Iterable[str] = (),
    detail: str | None = None,
    hint: str | None = None,
) -> None:
    """Return on 2xx; otherwise raise DeliveryError classified by status.

    detail is what the service said (defaults to the reply body, shortened); hint is appended
    for the person reading the error."""
    status = reply.status
    if 200 <= status < 300:
        return
    text = error_detail(reply) if detail is None else detail
    reason = f"HTTP {status}"
    if 300 <= status < 400:
        reason += ": redirect refused (the webhook URL has moved; use the new URL)"
    elif text:
        reason += f": {text}"
    if hint:
        reason += f" ({hint})"
    reason = redact(reason, secrets)
    if status in (408, 429) or status >= 500:
        raise DeliveryError(
            reason,
            retryable=True,
            retry_after=parse_retry_after(header(reply.headers, "Retry-After")),
            status=status,
        )
    raise DeliveryError(reason, retryable=False, status=status)


def error_detail(reply: HttpReply) -> str:
    """What a service said in an error reply: JSON error/message fields, else the body text."""
    text = reply.text.strip()
    if not text:
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        found = _json_error(data)
        if found:
            return _shorten(found)
    return _shorten(text)


def _json_error(data: dict[str, Any]) -> str:
    error = data.get("error")
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        return ": ".join(str(part) for part in (code, message) if part)
    parts = [data.get(key) for key in ("error", "code", "message") if data.get(key)]
    return ": ".join(str(part) for part in parts)


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= DETAIL_LIMIT else flat[: DETAIL_LIMIT - 1] + "…"


def header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent
    or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is not a wait
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _host_of(url: str) -> str:
    try:
        parts = urlsplit(url)
        return parts.netloc.rpartition("@")[2] or "the webhook"
    except ValueError:
        return "the webhook"


def exception_cause(exc: BaseException, secrets: Iterable[str]) -> str:
    """The useful end of a requests/urllib3 exception chain, without the URL it names."""
    text = str(exc)
    match = _ERRNO.search(text)
    if match:
        return match.group(0).strip()
    for marker in (
        "Read timed out",
        "Connect timed out",
        "timed out",
        "Connection refused",
        "Connection reset by peer",
        "Remote end closed connection without response",
        "Connection aborted",
    ):
        if marker in text:
            return marker
    return redact(f"{type(exc).__name__}: {text}", secrets)[:DETAIL_LIMIT]
