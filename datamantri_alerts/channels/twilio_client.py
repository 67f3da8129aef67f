"""The Twilio REST client, pointed at `TWILIO_API_BASE_URL`.

Imported only when a WhatsApp message is sent (twilio is a heavy import). The subclass of
`TwilioHttpClient` is the hook Twilio documents for changing how requests are made; here it
rewrites the `https://*.twilio.com` origin of every request to the configured base URL, so
tests and egress proxies can stand in for Twilio while the client itself is unmodified. Its
session is the guarded one (`net.session`): the webhook destination policy applies to the base
URL's addresses at connect time, and redirects are never followed. The client reads a reply
whole (its timeout bounds each socket read, not the reply), so the session reads at most
`REPLY_LIMIT` bytes of it within the request's timeout: a reply trickling a byte at a time, or
gigabytes of it, cannot hold a delivery or its memory.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from datamantri_alerts.net.destinations import DestinationPolicy, webhook_policy
from datamantri_alerts.net.session import GuardedSession, guarded_session

DEFAULT_BASE_URL = "https://api.twilio.com"


def rebase_url(url: str, base_url: str) -> str:
    """url with its Twilio origin replaced by base_url (whose path, if any, is a prefix)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host != "twilio.com" and not host.endswith(".twilio.com"):
        return url
    base = urlsplit(base_url.rstrip("/"))
    return urlunsplit(
        (base.scheme, base.netloc, base.path + parts.path, parts.query, parts.fragment)
    )


class CappedReplySession(GuardedSession):
    """A guarded session whose replies are read (stream=True) at most REPLY_LIMIT bytes, within
    twice the request's timeout (connect, then read); the rest of the body is dropped."""

    def send(self, request: Any, **kwargs: Any) -> Any:
        from datamantri_alerts.channels.http import read_reply_bytes

        kwargs["stream"] = True
        timeout = kwargs.get("timeout")
        seconds = sum(timeout) if isinstance(timeout, tuple) else float(timeout or 15.0) * 2
        started = time.monotonic()
        response = super().send(request, **kwargs)
        try:
            body = read_reply_bytes(response, deadline=started + seconds)
        finally:
            response.close()
        response._content = body
        response._content_consumed = True
        return response


class BaseUrlTwilioHttpClient(TwilioHttpClient):
    """TwilioHttpClient that sends every request to base_url instead of api.twilio.com."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 15.0,
        policy: DestinationPolicy | None = None,
    ) -> None:
        super().__init__(pool_connections=False, timeout=timeout)  # no session of its own
        self.base_url = base_url
        self.session = guarded_session(policy or webhook_policy(), session_class=CappedReplySession)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        return super().request(method, rebase_url(url, self.base_url), *args, **kwargs)

    @property
    def last_response(self) -> Response | None:
        return self._test_only_last_response


def make_client(
    account_sid: str, auth_token: str, *, base_url: str, timeout: float
) -> tuple[Client, BaseUrlTwilioHttpClient]:
    http_client = BaseUrlTwilioHttpClient(base_url, timeout=timeout)
    return Client(account_sid, auth_token, http_client=http_client), http_client
