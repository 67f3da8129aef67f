"""Column types shared by the models.

Text and JSON columns keep text from outside (job stderr, driver errors, query results, HTTP
error bodies): `StoredText` and `JSONType` make every value storable on every dialect as it is
bound, so no writer has to remember to (PostgreSQL refuses NUL in text and JSONB; no driver can
encode the lone surrogates that bytes which were not UTF-8 decode to).
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from json.encoder import JSONEncoder, encode_basestring_ascii
from types import ModuleType
from typing import Any

from sqlalchemy import JSON, DateTime, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

#: SQLAlchemy's names for MySQL and MariaDB (`mysql+pymysql://`, `mariadb+pymysql://`).
MYSQL_DIALECTS = frozenset({"mysql", "mariadb"})


#: No value (a sentinel: never equal to one).
_NOT_SET = object()

#: How many datetime objects' parameters `UTCDateTime` keeps (a batch binds a handful).
_BOUND_DATETIMES_KEPT = 16


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every dialect (SQLite and MariaDB keep no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        # MySQL/MariaDB DATETIME keeps whole seconds unless asked for microseconds; leases,
        # due times and episode order need them, as PostgreSQL and SQLite keep them.
        if dialect.name in MYSQL_DIALECTS:
            from sqlalchemy.dialects.mysql import DATETIME

            return dialect.type_descriptor(DATETIME(fsp=6))
        return super().load_dialect_impl(dialect)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        if dialect.name != "postgresql":
            return value.replace(tzinfo=None)
        return value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """`process_bind_param` then the dialect's own processing (SQLAlchemy's general path),
        the parameters of the last few datetime objects bound kept for those same objects: a
        datetime is immutable, so the same object binds the same parameter. An executemany
        binds one `now` (and one next due time per interval) for every row of a batch, through
        the one processor of every datetime column."""
        general = super().bind_processor(dialect)
        if general is None:
            return None
        #: id -> (the datetime object, its parameter): the object is held, so its id is not
        #: another's while it is here; an entry is one tuple, so threads sharing this
        #: processor never see one object with another's parameter.
        bound: dict[int, tuple[Any, Any]] = {}

        def process(value: Any) -> Any:
            if value is None:
                return general(value)
            entry = bound.get(id(value))
            if entry is not None and entry[0] is value:
                return entry[1]
            parameter = general(value)
            if len(bound) >= _BOUND_DATETIMES_KEPT:
                bound.clear()
            bound[id(value)] = (value, parameter)
            return parameter

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        """The dialect's own processing then `process_result_value` (SQLAlchemy's general path),
        the last value read kept with what it gave: a column's rows often share one time (a
        batch's `last_evaluated_at`), and `datetime.replace` parses its nine keywords at every
        call (≈ 9k instructions). Kept only for a value whose equal is provably read the same:
        text (SQLite) and naive datetimes (MySQL/MariaDB) of equal `fold`; None is None."""
        general = super().result_processor(dialect, coltype)
        if general is None:
            return None
        #: (key of the last value read, what it gave): one tuple, so threads sharing this
        #: processor never see one value with another's result.
        last: tuple[Any, Any] = (_NOT_SET, None)

        def process(value: Any) -> Any:
            nonlocal last
            if value is None:
                return None
            kind = type(value)
            if kind is str:
                key: Any = value
            elif kind is datetime and value.tzinfo is None:
                key = (value, value.fold)
            else:
                return general(value)
            entry = last
            if type(entry[0]) is type(key) and entry[0] == key:
                return entry[1]
            result = general(value)
            last = (key, result)
            return result

        return process


#: What NUL is stored as: the escape a reader recognises, four visible characters.
NUL_SHOWN_AS = "\\x00"
#: Code points no UTF-8 encoder accepts: lone surrogates (e.g. from `surrogateescape`).
_SURROGATES = re.compile("[\ud800-\udfff]")


def storable_text(value: str) -> str:
    """`value` as every store dialect keeps it: NUL shown as `\\x00`, lone surrogates (bytes
    that were not UTF-8) as U+FFFD. Text without either comes back as the same object."""
    if "\x00" in value:
        value = value.replace("\x00", NUL_SHOWN_AS)
    if value.isascii():  # no surrogate then, and no copy made to find out
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = _SURROGATES.sub("\ufffd", value)
    return value


def storable(value: Any) -> Any:
    """`storable_text` applied to every string in a JSON-like value (keys included)."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


class StoredText(TypeDecorator[str]):
    """TEXT whose values are made storable (`storable_text`) on the way in."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        # LONGTEXT on MySQL/MariaDB, as `LongText`: their TEXT stops at 64 KiB.
        if dialect.name in MYSQL_DIALECTS:
            from sqlalchemy.dialects.mysql import LONGTEXT

            return dialect.type_descriptor(LONGTEXT())
        return super().load_dialect_impl(dialect)

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return storable_text(value) if isinstance(value, str) else value


class PortableJSON(TypeDecorator[Any]):
    """JSON everywhere, JSONB on PostgreSQL: the base of the store's JSON column types."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            # Imported only for a PostgreSQL store: the dialect package is ≈ 40 ms of imports
            # a command on a SQLite or MariaDB store never needs.
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


class StoredJSON(PortableJSON):
    """JSON (JSONB on PostgreSQL) whose strings are made storable (`storable`) on the way in."""

    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return storable(value)


def __getattr__(name: str) -> Any:
    """`LongText`, built on first use: it imports the MySQL dialect, which a SQLite or
    PostgreSQL store never needs (35 ms of every command's start-up)."""
    if name == "LongText":
        from sqlalchemy.dialects.mysql import LONGTEXT

        #: Unbounded text everywhere (migrations): MySQL/MariaDB TEXT stops at 64 KiB, so
        #: LONGTEXT there.
        value = Text().with_variant(LONGTEXT(), "mysql", "mariadb")
        globals()["LongText"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: JSON everywhere, JSONB on PostgreSQL; strings made storable.
JSONType = StoredJSON()

JSONValue = Any


@functools.cache
def _secrets() -> ModuleType:
    """`datamantri_alerts.secrets`, imported at the first value redacted, not with the models
    (its patterns are start-up time a command that writes no text never needs); then kept: an
    import statement costs about a microsecond at every value, and a batch binds thousands."""
    from datamantri_alerts import secrets

    return secrets


def _redact_json(value: Any) -> Any:
    if value is None:
        return None
    secrets = _secrets()
    # One snapshot of the known secrets per value, not one per string in it.
    return secrets.redact_value(value, secrets.known_redactor())


def _redacted_storable(value: Any, redact: Callable[[str], str]) -> Any:
    """`storable(redact_value(value, redact))` in one pass over the value: every string
    redacted then made storable, mapping keys made storable (not redacted), tuples as lists."""
    if isinstance(value, str):
        return storable_text(redact(value))
    if isinstance(value, Mapping):
        # A string item (most of them) is done here, not in a call of its own.
        return {
            storable(key): storable_text(redact(item))
            if isinstance(item, str)
            else _redacted_storable(item, redact)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redacted_storable(item, redact) for item in value]
    return value


def _c_encoder() -> Callable[[dict[int, Any]], Any] | None:
    """What makes the C encoder `json.dumps(value)` makes at every call
    (`JSONEncoder.iterencode`, one shot: default separators, ASCII, NaN allowed, keys
    unsorted, circular references detected with the markers given); None without the C
    accelerator."""
    try:
        from json.encoder import c_make_encoder  # type: ignore[attr-defined]
    except ImportError:
        return None
    if c_make_encoder is None:
        return None
    default = JSONEncoder().default

    def make(markers: dict[int, Any]) -> Any:
        return c_make_encoder(
            markers, default, encode_basestring_ascii, None, ": ", ", ", False, False, True
        )

    try:
        make({})
    except TypeError:  # another interpreter's signature
        return None
    return make


_MAKE_ENCODER = _c_encoder()
#: Each thread's encoder and its circular-reference markers (`_json_text`): made once per
#: thread, not once per value; the markers are a thread's own, as the encoder fills them
#: while it works.
_encoders = threading.local()


def _json_text(value: Any) -> str | None:
    """`json.dumps(value)` (ASCII: a NUL is `\\u0000` in it, a lone surrogate `\\udXXX`, an
    astral character's pair too), None for a value it cannot serialise (a circular one at
    once, as `json.dumps` refuses it). The text of the encoder `json.dumps` builds, built once
    per thread (`_c_encoder`): a third less per value."""
    if _MAKE_ENCODER is None:
        try:
            return json.dumps(value)
        except (TypeError, ValueError, RecursionError):
            return None
    made = getattr(_encoders, "made", None)
    if made is None:
        markers: dict[int, Any] = {}
        made = _encoders.made = (_MAKE_ENCODER(markers), markers)
    encoder, markers = made
    try:
        return "".join(encoder(value, 0))
    except (TypeError, ValueError, RecursionError):
        markers.clear()  # what the failed value left in them
        return None


def _kept_as_is(text: str | None) -> bool:
    """Whether the value whose `_json_text` is `text` has no string that redaction or
    `storable` would change (an astral character's surrogate pair only costs the walk)."""
    return (
        text is not None
        and "\\u0000" not in text
        and "\\ud" not in text
        and not _secrets().redaction_possible(text)
    )


def _redact_storable_json(value: Any) -> Any:
    # One snapshot of the known secrets per value, not one per string in it.
    return _redacted_storable(value, _secrets().known_redactor())


class RedactedText(StoredText):
    """Free text written by the product (summaries, errors, notes, messages).

    Known secrets and driver parameters are removed on the way in (`secrets.redact_known`),
    whichever code path wrote the value, and again on the way out (rows older than that); what
    goes in is made storable too (`storable_text`)."""

    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else storable_text(_secrets().redact_known(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        # Rows written before this redaction existed (or by an older version) are shown clean.
        return None if value is None else _secrets().redact_known(value)


class RedactedJSON(StoredJSON):
    """JSON written by the product (details, outbox payloads, delivery records), every string in
    it redacted like `RedactedText`, on the way in and out, and made storable on the way in;
    JSONB on PostgreSQL."""

    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if _kept_as_is(_json_text(value)):
            return value  # no string in it that redaction or `storable` would change
        return _redact_storable_json(value)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """`process_bind_param` then the JSON type's own bind processing, as SQLAlchemy's
        `TypeDecorator` does; where that processing is plain `json.dumps(value)` (SQLite,
        MySQL/MariaDB: no serializer of the engine's, no string processing), a value kept as
        it is binds the JSON text already made to check it, not a second `json.dumps` of it.
        PostgreSQL (psycopg serialises JSONB itself) and anything else take the general path."""
        general = super().bind_processor(dialect)
        impl = self.impl_instance
        if (
            getattr(dialect, "_json_serializer", _NOT_SET) is not None
            or dialect.supports_native_json_serialization
            or not isinstance(impl, JSON)
            or type(impl).bind_processor is not JSON.bind_processor
            or type(impl)._make_bind_processor is not JSON._make_bind_processor
            # SQLAlchemy's private string type of JSON: a version without it takes the general
            # path, as one whose strings are processed does.
            or (str_impl := getattr(impl, "_str_impl", None)) is None
            or str_impl.bind_processor(dialect) is not None
            or general is None
        ):
            return general
        json_process = impl.bind_processor(dialect)

        def process(value: Any) -> Any:
            if value is None:
                return general(value)
            text = _json_text(value)
            if _kept_as_is(text):
                return text  # what `json_process(value)` makes: `json.dumps(value)`
            return json_process(_redact_storable_json(value))

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return _redact_json(value)
