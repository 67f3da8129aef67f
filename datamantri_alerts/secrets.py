"""Secrets: `${ENV_VAR}` references, masking for display, and redaction of error text.

Values are stored as written; `${VAR}` is resolved only when a value is used. Anything shown to a
person (tables, JSON, exports, logs, history) goes through the masking helpers here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

from datamantri_alerts.errors import RuntimeFailure

#: What `export` writes in place of a literal secret; `sync` reads it as "keep the stored value".
REDACTED = "<redacted>"
MASK = "***"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WHOLE_ENV_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]+")


def is_env_ref(value: object) -> bool:
    """True when the whole value is one `${VAR}` reference."""
    return isinstance(value, str) and bool(_WHOLE_ENV_REF.match(value.strip()))


def has_env_ref(value: object) -> bool:
    return isinstance(value, str) and bool(_ENV_REF.search(value))


def resolve_env(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace every `${VAR}` in value; an unset variable is a runtime failure naming it."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise RuntimeFailure(f"environment variable {name} is not set")
        return env[name]

    return _ENV_REF.sub(substitute, value)


def mask_url(url: str) -> str:
    """A URL safe to show: `${VAR}` kept, password and path-borne tokens masked.

    Database URLs keep scheme, user, host, port and database name; only the password goes.
    Webhook URLs (http/https) keep scheme and host; the path and query carry the token and go.
    """
    if not url or is_env_ref(url):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if not parts.scheme:
        return mask_secret(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        if ":" in userinfo and not has_env_ref(userinfo.split(":", 1)[1]):
            netloc = f"{user}:{MASK}@{hostport}"
        elif ":" in userinfo:
            netloc = f"{user}:{userinfo.split(':', 1)[1]}@{hostport}"
    if parts.scheme in ("http", "https"):
        path = "/" + MASK if parts.path not in ("", "/") or parts.query else parts.path
        return urlunsplit((parts.scheme, netloc, path, "", ""))
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def mask_secret(value: str) -> str:
    """A literal secret is shown as `***`; a `${VAR}` reference is shown as written."""
    if not value or is_env_ref(value):
        return value
    return MASK


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Error or log text with every known secret removed and every URL masked."""
    out = text
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        out = out.replace(secret, MASK)
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), out)


def secrets_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """The secret values configured in the environment, for redaction."""
    env = os.environ if environ is None else environ
    names = (
        "SMTP_PASSWORD",
        "TWILIO_AUTH_TOKEN",
        "SLACK_WEBHOOK_URL",
        "TEAMS_WEBHOOK_URL",
        "ALERTS_SECRET_KEY",
        "ALERTS_HEARTBEAT_URL",
    )
    return [env[n] for n in names if env.get(n)]
