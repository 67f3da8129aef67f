"""Column types shared by the models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every dialect (SQLite and MariaDB keep no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        if dialect.name != "postgresql":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: JSON everywhere, JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")

JSONValue = Any


def _redact_json(value: Any) -> Any:
    from datamantri_alerts.secrets import redact_known, redact_value

    return redact_value(value, redact_known)


class RedactedText(TypeDecorator[str]):
    """Free text written by the product (summaries, errors, notes, messages).

    Known secrets and driver parameters are removed on the way in (`secrets.redact_known`),
    whichever code path wrote the value, and again on the way out (rows older than that)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        from datamantri_alerts.secrets import redact_known

        return None if value is None else redact_known(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        # Rows written before this redaction existed (or by an older version) are shown clean.
        from datamantri_alerts.secrets import redact_known

        return None if value is None else redact_known(value)


class RedactedJSON(TypeDecorator[Any]):
    """JSON written by the product (details, outbox payloads, delivery records), every string in
    it redacted like `RedactedText`, on the way in and out; JSONB on PostgreSQL."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return _redact_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return _redact_json(value)
