"""HTTP data sources: GET the URL once; a 2xx answer is reachable, anything else is not.

The request goes through the guarded session (`net.session`) under the data-source destination
policy (`ALERTS_ALLOW_PRIVATE_DATASOURCES=1` lifts it): a refused address is a configuration
problem (CannotEvaluate) and nothing connects to it. A redirect is a failure that says where it
pointed (`/health` → `/login` is not healthy); with `follow_redirects` each hop, up to
`MAX_REDIRECTS`, is requested through the same session, so every hop passes the policy, and the
whole walk shares one time budget. Only the status line is read; the body is never downloaded.

A run's HTTP checks share one session (`datasource_session`, held by the run's
`checks.pool.SourcePool`): its connections are reused, and it keeps no cookies, so nothing one
check's server set travels with another check's request.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextlib import nullcontext
from http.cookiejar import DefaultCookiePolicy
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urljoin, urlsplit, urlunsplit

from datamantri_alerts.checks.base import CannotEvaluate
from datamantri_alerts.checks.sources import (
    ProbeResult,
    SourceInfo,
    describe_error,
    is_http_url,
    resolve_source_url,
)
from datamantri_alerts.secrets import MASK, mask_url

if TYPE_CHECKING:
    from datamantri_alerts.net.session import GuardedSession

#: Redirects followed at most when a source opts in with `follow_redirects`.
MAX_REDIRECTS = 5


def datasource_session(pool_maxsize: int = 10) -> GuardedSession:
    """A guarded session under the data-source destination policy that accepts no cookies.

    `pool_maxsize`: connections kept per host (the number of checks sharing the session).
    """
    from datamantri_alerts.net.destinations import datasource_policy
    from datamantri_alerts.net.session import guarded_session

    session = guarded_session(datasource_policy(), pool_maxsize=pool_maxsize)
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return session


def probe_http(
    source: SourceInfo,
    timeout: float,
    *,
    follow_redirects: bool = False,
    session: GuardedSession | None = None,
) -> ProbeResult:
    """GET the source's URL (`${VAR}` resolved) within `timeout` seconds in all, through the
    run's `session` (one of its own, closed after, when None).

    Returns reachable for a 2xx answer; a 3xx (not followed, or beyond MAX_REDIRECTS hops), any
    other status, a timeout or a connection error is unreachable, with the reason in `summary`
    and `details["error"]`. Raises CannotEvaluate when the destination policy refuses the URL's
    address (or the URL is unusable) before anything was sent.
    """
    import requests

    from datamantri_alerts.net.destinations import DestinationRefused

    started = time.monotonic()
    url, secrets = resolve_source_url(source)
    shown = mask_url(url)
    current, hops = url, 0
    scope = nullcontext(session) if session is not None else datasource_session()
    with scope as active:
        while True:
            remaining = timeout - (time.monotonic() - started)
            if remaining <= 0:
                message = f"GET {shown} timed out after following {hops} redirect(s)"
                return _failure(message, started, {"url": shown, "redirects": hops})
            try:
                # stream=True: the status line is enough; a body trickling in cannot hold us.
                with active.get(current, timeout=(remaining, remaining), stream=True) as reply:
                    status = reply.status_code
                    location = reply.headers.get("Location")
            except DestinationRefused as exc:
                if hops == 0:
                    raise CannotEvaluate(f"data source {source.label}: {exc}") from None
                message = f"GET {shown} was redirected to a refused destination: {exc}"
                return _failure(message, started, {"url": shown, "redirects": hops})
            except requests.RequestException as exc:
                # The cause (`[Errno 111] Connection refused`), as deliveries report it, not
                # urllib3's retry wrapper quoting the pool and connection classes.
                from datamantri_alerts.channels.http import exception_cause

                message = f"GET {shown} failed: {exception_cause(exc, secrets)}"
                return _failure(message, started, {"url": shown, "redirects": hops})
            except ValueError as exc:
                message = f"GET {shown} failed: {describe_error(exc, secrets)}"
                return _failure(message, started, {"url": shown, "redirects": hops})
            details: dict[str, object] = {"status_code": status, "url": shown}
            if hops:
                details["redirects"] = hops
            if 300 <= status < 400 and location:
                target = urljoin(current, location)
                details["location"] = shown_location(target, secrets)
                if follow_redirects and hops < MAX_REDIRECTS and is_http_url(target):
                    current, hops = target, hops + 1
                    continue
                why = "redirect not followed" if not follow_redirects else "too many redirects"
                if follow_redirects and not is_http_url(target):
                    why = "redirect to a non-HTTP URL"
                message = (
                    f"GET {shown} answered HTTP {status} redirecting to "
                    f"{details['location']} ({why})"
                )
                return _failure(message, started, details)
            elapsed = _ms_since(started)
            if 200 <= status < 300:
                via = f" after {hops} redirect(s)" if hops else ""
                summary = f"GET {shown} returned {status}{via} in {elapsed} ms"
                return ProbeResult(True, summary, elapsed, details)
            return _failure(f"GET {shown} returned HTTP {status}", started, details)


def shown_location(url: str, secrets: Iterable[str] = ()) -> str:
    """A redirect target safe to show: scheme, host and path kept; user info dropped; query
    values, token-like path segments and known secrets masked (`/login?next=***`)."""
    from datamantri_alerts.channels.http import url_secrets

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    tokens = set(url_secrets(url))
    known = [secret for secret in secrets if len(secret) >= 4]
    segments = [
        MASK if segment in tokens or any(secret in segment for secret in known) else segment
        for segment in parts.path.split("/")
    ]
    query = "&".join(
        f"{key}={MASK}" for key, _value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, "/".join(segments), query, ""))


def _failure(message: str, started: float, details: dict[str, object]) -> ProbeResult:
    return ProbeResult(False, message, _ms_since(started), {**details, "error": message})


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
