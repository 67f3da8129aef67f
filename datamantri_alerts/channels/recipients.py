"""Recipient validation shared by the channels: addresses, E.164 numbers, webhook URLs."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from datamantri_alerts.channels.base import RecipientError
from datamantri_alerts.secrets import has_env_ref, is_env_ref

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
LOOPBACK_HOSTS = {"localhost", "localhost.localdomain"}


def as_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise RecipientError(f"expected a list of {what}, got {type(value).__name__}")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise RecipientError(f"expected {what} as text, got {type(item).__name__}")
        out.append(item.strip())
    if not out:
        raise RecipientError(f"needs at least one {what.rstrip('s')}")
    return out


def one_or_many(value: Any, validate: Callable[[Any], Any], what: str) -> Any:
    """A recipients entry that is one item or a list of them, each checked by validate;
    returned in the shape it was given (RecipientError when the list is empty)."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise RecipientError(f"needs at least one {what}")
    out = [validate(item) for item in items]
    return out if isinstance(value, list) else out[0]


def each_of(value: Any) -> list[Any]:
    """The items of a stored one-or-many entry (see one_or_many); [] for an empty one."""
    if not value:
        return []
    return list(value) if isinstance(value, list) else [value]


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_webhook_url(value: Any) -> str:
    """https everywhere; plain http only to a loopback host; `${VAR}` accepted as written."""
    if not isinstance(value, str) or not value.strip():
        raise RecipientError("expected a webhook URL")
    value = value.strip()
    if is_env_ref(value):
        return value
    if has_env_ref(value):
        return value  # resolved at send time, validated then
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise RecipientError(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RecipientError("webhook must be an https:// URL (or ${ENV_VAR})")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise RecipientError(
            f"plain http webhook to non-loopback host {parts.hostname!r} refused; use https"
        )
    return value


def validate_e164(value: str) -> str:
    if is_env_ref(value):
        return value
    number = value.removeprefix("whatsapp:").replace(" ", "").replace("-", "")
    if not E164.match(number):
        raise RecipientError(
            f"{value!r} is not an E.164 number (+ then country code and number, "
            "no leading 0 after the +, 8 to 15 digits)"
        )
    return number


def validate_email(value: str) -> str:
    """The address normalised, when its syntax is valid; `${VAR}` accepted as written.

    Any syntactically valid domain is accepted, internal ones included (`corp.local`,
    `intranet.lan`, `mailhost`, `example.test`): the SMTP relay decides what it can deliver.
    Raises RecipientError naming the address and the syntax problem.
    """
    if is_env_ref(value):
        return value
    from email_validator import EmailNotValidError

    try:
        return _email_syntax()(
            value, check_deliverability=False, globally_deliverable=False, test_environment=True
        ).normalized
    except EmailNotValidError as exc:
        raise RecipientError(f"{value!r} is not a valid email address: {exc}") from None


def _email_syntax() -> Any:
    """email-validator's `validate_email`, with its special-use domain list emptied.

    The library refuses special-use names (`.local`, `.test`, ...) even with
    `globally_deliverable=False`; its documented way to allow them is to change the
    module-level `SPECIAL_USE_DOMAIN_NAMES` list (see its README and issue #122).
    """
    import email_validator

    email_validator.SPECIAL_USE_DOMAIN_NAMES = []
    return email_validator.validate_email
