"""Optional encryption at rest of the columns that hold secrets.

With `ALERTS_SECRET_KEY` set (one Fernet key, or several separated by commas: the first encrypts,
all decrypt — MultiFernet, so keys can be rotated with `alerts secrets rotate`), webhook URLs,
data source URLs and outbox recipients are written encrypted. Without it they are written as
given. Values are marked, so a store can hold both while it is being rotated.

Whatever these columns hold is a configured secret: every value written or read is registered
with the redactor (`secrets.register_configured`), so no output of this process shows it.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from datamantri_alerts.errors import RuntimeFailure
from datamantri_alerts.secrets import register_configured
from datamantri_alerts.store.types import PortableJSON

KEY_ENV = "ALERTS_SECRET_KEY"
TEXT_PREFIX = "enc:v1:"
JSON_MARKER = "$encrypted"


@cache
def _fernet(keys: str) -> Any:
    from cryptography.fernet import Fernet, MultiFernet

    try:
        return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])
    except (ValueError, TypeError):
        raise RuntimeFailure(
            f"{KEY_ENV} is not a valid Fernet key (generate one with `alerts secrets generate-key`)"
        ) from None


def current_cipher() -> Any | None:
    keys = os.environ.get(KEY_ENV, "").strip()
    return _fernet(keys) if keys else None


def encrypt_text(value: str) -> str:
    cipher = current_cipher()
    if cipher is None or value.startswith(TEXT_PREFIX):
        return value
    return TEXT_PREFIX + cipher.encrypt(value.encode()).decode()


def decrypt_text(value: str) -> str:
    if not value.startswith(TEXT_PREFIX):
        return value
    cipher = current_cipher()
    if cipher is None:
        raise RuntimeFailure(f"the store holds encrypted secrets: set {KEY_ENV} to read them")
    from cryptography.fernet import InvalidToken

    try:
        return cipher.decrypt(value[len(TEXT_PREFIX) :].encode()).decode()
    except InvalidToken:
        raise RuntimeFailure(
            f"a stored secret cannot be decrypted with {KEY_ENV} (wrong or rotated-out key)"
        ) from None


def is_encrypted(value: Any) -> bool:
    if isinstance(value, str):
        return value.startswith(TEXT_PREFIX)
    return isinstance(value, dict) and set(value) == {JSON_MARKER}


class EncryptedText(TypeDecorator[str]):
    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        register_configured(value)
        return None if value is None else encrypt_text(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        plain = None if value is None else decrypt_text(value)
        register_configured(plain)
        return plain


class EncryptedJSON(PortableJSON):
    """JSON whose whole value is encrypted into `{"$encrypted": "enc:v1:..."}` when a key is set."""

    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        register_configured(value)
        if value is None or current_cipher() is None:
            return value
        return {JSON_MARKER: encrypt_text(json.dumps(value, sort_keys=True))}

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, dict) and set(value) == {JSON_MARKER}:
            value = json.loads(decrypt_text(value[JSON_MARKER]))
        register_configured(value)
        return value


def register_stored_secrets(session: Session) -> None:
    """Read every secret column of the store once, so the redactor knows all of them before a
    command writes anything: a webhook URL pasted into an alert's description is masked by
    `alerts list` (which reads no recipients) as it is by `alerts show`.

    `session`: a store session. Values are registered by the columns' own types as they are
    read. A column that cannot be decrypted (wrong key) is skipped here; the command that
    needs its values reports that itself.
    """
    from sqlalchemy import select

    from datamantri_alerts.store.models import Alert, DataSource

    for secret_column in (DataSource.url, Alert.recipients):
        try:
            for _ in session.execute(select(secret_column)).scalars():
                pass
        except RuntimeFailure:
            continue


def generate_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
