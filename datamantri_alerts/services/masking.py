"""How stored alerts and entities are shown: secrets masked, or redacted for export."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from datamantri_alerts.secrets import MASK, REDACTED, has_env_ref, is_env_ref, mask_url


def recipients_for_display(recipients: dict[str, Any]) -> dict[str, Any]:
    """Recipients with every secret recipient (webhook URLs, routing keys, Apprise URLs)
    masked the way its channel masks it; lists and mappings masked item by item."""
    from datamantri_alerts.channels import get_channel

    shown: dict[str, Any] = {}
    for name, value in recipients.items():
        try:
            channel = get_channel(name)
        except KeyError:
            shown[name] = _mask_nested(value, mask_url)
            continue
        if channel.recipient_is_secret:
            shown[name] = _mask_nested(value, channel.mask_recipient)
        else:
            shown[name] = value
    return shown


def recipients_for_export(recipients: dict[str, Any], show_secrets: bool) -> dict[str, Any]:
    """Recipients for a YAML export: a secret channel's value holding any literal secret becomes
    the redaction marker as a whole (so `sync` keeps the stored value as a whole); values made
    only of `${VAR}` references are exported as written."""
    from datamantri_alerts.channels import get_channel

    if show_secrets:
        return dict(recipients)
    out: dict[str, Any] = {}
    for name, value in recipients.items():
        try:
            secret = get_channel(name).recipient_is_secret
        except KeyError:
            secret = True
        out[name] = REDACTED if secret and _has_literal(value) else value
    return out


def _has_literal(value: Any) -> bool:
    """Whether value holds text other than `${VAR}` references (a mapping's `format` aside)."""
    if isinstance(value, str):
        return bool(value) and not is_env_ref(value)
    if isinstance(value, list | tuple):
        return any(_has_literal(item) for item in value)
    if isinstance(value, dict):
        return any(_has_literal(item) for key, item in value.items() if key != "format")
    return False


def _mask_nested(value: Any, mask: Callable[[str], str]) -> Any:
    """value with mask applied to every text in it (a mapping's keys kept, `format` as is)."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, list | tuple):
        return [_mask_nested(item, mask) for item in value]
    if isinstance(value, dict):
        return {
            key: item if key == "format" else _mask_nested(item, mask)
            for key, item in value.items()
        }
    return value


def url_for_export(url: str, show_secrets: bool) -> str:
    """A data source URL for export: a literal password becomes the redaction marker.

    An HTTP data source's path and query are secrets too (signed health URLs, `api_key=`), like
    a webhook's: a literal one with a path, query or password is exported as `<redacted>`
    whole, which `sync` reads as "keep the stored URL".
    """
    if show_secrets or is_env_ref(url):
        return url
    if url.strip().lower().startswith(("http://", "https://")):
        return REDACTED if mask_url(url.strip()) != url.strip() else url
    return _replace_password(url, REDACTED)


def url_for_display(url: str) -> str:
    return mask_url(url)


def _replace_password(url: str, replacement: str) -> str:
    if url.startswith(("http://", "https://")):
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        if parts.password and not has_env_ref(parts.password):
            user = parts.username or ""
            host = parts.netloc.rpartition("@")[2]
            return urlunsplit(parts._replace(netloc=f"{user}:{replacement}@{host}"))
        return url
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return REDACTED
    if parsed.password and not has_env_ref(str(parsed.password)) and parsed.password != MASK:
        placeholder = "XREDACTEDPLACEHOLDERX"
        rendered = parsed.set(password=placeholder).render_as_string(hide_password=False)
        return rendered.replace(placeholder, replacement)
    return url


def restore_redacted_url(new: str, stored: str | None, field: str) -> str:
    """Put the stored password back where an export wrote the redaction marker."""
    from datamantri_alerts.errors import InputError

    if REDACTED not in new:
        return new
    if new == REDACTED:
        if stored is None:
            raise InputError("is <redacted> but there is no stored value to keep", field=field)
        return stored
    if stored is None:
        raise InputError("has a <redacted> password but there is no stored value", field=field)
    stored_password = _stored_password(stored)
    if stored_password is None:
        raise InputError("has a <redacted> password but the stored URL has none", field=field)
    if new.startswith(("http://", "https://")):
        from urllib.parse import quote

        return new.replace(REDACTED, quote(stored_password, safe=""), 1)
    from sqlalchemy.engine import make_url

    return make_url(new).set(password=stored_password).render_as_string(hide_password=False)


def _stored_password(url: str) -> str | None:
    if url.startswith(("http://", "https://")):
        from urllib.parse import urlsplit

        return urlsplit(url).password
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:
        return None
    return None if password is None else str(password)
