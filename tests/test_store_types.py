"""Outside text is storable on every dialect: NUL and invalid UTF-8 made safe when bound."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, bindparam, create_engine, select
from sqlalchemy.types import TypeDecorator

from datamantri_alerts.store.engine import normalize_url
from datamantri_alerts.store.models import AlertHistory, JobRun, Notification
from datamantri_alerts.store.types import (
    JSONType,
    RedactedJSON,
    StoredText,
    _json_text,
    storable,
    storable_text,
)

NUL_TEXT = "Segfault\x00core"
BAD_UTF8 = b"bad \xff\xfe bytes".decode("utf-8", "surrogateescape")


def test_storable_text_values() -> None:
    assert storable_text(NUL_TEXT) == "Segfault\\x00core"
    assert storable_text(BAD_UTF8) == "bad \ufffd\ufffd bytes"
    assert storable_text("\x00\x00") == "\\x00\\x00"
    assert storable_text("\ud83d\ude00 split pair") == "\ufffd\ufffd split pair"
    clean = "plain text, ünïcode, emoji \U0001f600, tab\tand\nnewline"
    assert storable_text(clean) is clean  # untouched, not copied
    assert storable({"k\x00": [NUL_TEXT, 1, None, {"x": BAD_UTF8}], "n": 2.5}) == {
        "k\\x00": ["Segfault\\x00core", 1, None, {"x": "bad \ufffd\ufffd bytes"}],
        "n": 2.5,
    }


@contextmanager
def scratch_table(url: str, prefix: str, *columns: Column[Any]) -> Iterator[tuple[Engine, Table]]:
    """A new table `<prefix>_<random>` of `id` plus `columns` on the store at `url`, and an
    engine to it; dropped and disposed afterwards."""
    table = Table(
        f"{prefix}_{uuid.uuid4().hex[:10]}",
        MetaData(),
        Column("id", Integer, primary_key=True),
        *columns,
    )
    engine = create_engine(normalize_url(url))
    table.create(engine)
    try:
        yield engine, table
    finally:
        table.drop(engine)
        engine.dispose()


def test_text_and_json_columns_store_outside_text_on_every_dialect(any_dialect_url: str) -> None:
    with scratch_table(
        any_dialect_url, "outside", Column("text", StoredText), Column("doc", JSONType)
    ) as (engine, table):
        with engine.begin() as conn:
            conn.execute(
                table.insert(),
                [
                    {"id": 1, "text": NUL_TEXT, "doc": {"rows": [[NUL_TEXT, BAD_UTF8]]}},
                    {"id": 2, "text": BAD_UTF8, "doc": {BAD_UTF8: "x\x00"}},
                    {"id": 3, "text": None, "doc": None},
                ],
            )
            conn.execute(table.update().where(table.c.id == 3).values(text="late\x00"))
        with engine.connect() as conn:
            rows = conn.execute(select(table).order_by(table.c.id)).all()
        assert [tuple(r) for r in rows] == [
            (1, "Segfault\\x00core", {"rows": [["Segfault\\x00core", "bad \ufffd\ufffd bytes"]]}),
            (2, "bad \ufffd\ufffd bytes", {"bad \ufffd\ufffd bytes": "x\\x00"}),
            (3, "late\\x00", None),
        ]


def test_every_model_column_of_outside_text_is_storable(store: Any) -> None:
    """Run errors, summaries, details, delivery errors: written through the ORM and Core."""
    now = datetime.now(UTC)
    with store.transaction() as session:
        run = JobRun(
            job_kind="pipeline",
            job_id="p",
            status="failed",
            started_at=now,
            finished_at=now,
            error=NUL_TEXT,
            command=f"sh -c {BAD_UTF8}",
            created_at=now,
        )
        episode = AlertHistory(
            alert_name="a",
            triggered_at=now,
            severity="warning",
            summary=BAD_UTF8,
            details={"error": NUL_TEXT},
            notification_errors=[{"reason": NUL_TEXT}],
        )
        session.add_all([run, episode])
        session.flush()
        session.add(
            Notification(
                dedup_key="k",
                history_id=episode.id,
                channel="slack",
                recipient="${HOOK}",
                kind="firing",
                payload={"summary": NUL_TEXT},
                last_error=f"HTTP 500: {NUL_TEXT}",
                created_at=now,
                next_attempt_at=now,
            )
        )
    with store.session() as session:
        run = session.scalars(select(JobRun)).one()
        assert (run.error, run.command) == ("Segfault\\x00core", "sh -c bad \ufffd\ufffd bytes")
        episode = session.scalars(select(AlertHistory)).one()
        assert episode.summary == "bad \ufffd\ufffd bytes"
        assert episode.details == {"error": "Segfault\\x00core"}
        assert episode.notification_errors == [{"reason": "Segfault\\x00core"}]
        notification = session.scalars(select(Notification)).one()
        assert notification.last_error == "HTTP 500: Segfault\\x00core"
        assert notification.payload == {"summary": "Segfault\\x00core"}


class _GeneralRedactedJSON(RedactedJSON):
    """`RedactedJSON` binding through SQLAlchemy's general `TypeDecorator` path only
    (`process_bind_param`, then the JSON type's own processing): what its quick path must match."""

    cache_ok = True
    bind_processor = TypeDecorator.bind_processor  # type: ignore[assignment]


#: Values for the quick path and the general one: clean JSON, a registered secret, NUL, a lone
#: surrogate, a structural rule's literal, an astral character, scalars, None, unserialisable.
_REDACTED_JSON_VALUES: list[Any] = [
    {"table": "t_00001", "age_seconds": 12.5, "status": "pass", "filter": None},
    {"error": "hook https://hooks.example.com/services/regSECRETvalue9 refused", "n": 3},
    {"nul": NUL_TEXT, "nested": [{"x": "regSECRETvalue9\x00tail"}]},
    {"bad": BAD_UTF8, BAD_UTF8: ["k"]},
    {"e": "DETAIL:  Key (email)=(someone@example.com) already exists."},
    ["emoji \U0001f600", "ünïcode", 1, True, None, 2.5],
    "regSECRETvalue9 alone",
    "plain",
    17,
    None,
]


def test_redacted_json_quick_path_binds_what_the_general_path_binds() -> None:
    """On SQLite and MySQL/MariaDB `RedactedJSON` binds the JSON text it made to check a value,
    not a second `json.dumps`: for every value, secrets known or not, the same parameter as
    `process_bind_param` followed by the JSON type's processing. PostgreSQL's is the general
    one."""
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    from datamantri_alerts.secrets import MASK, register_secret

    for registered in (False, True):
        if registered:
            register_secret("regSECRETvalue9")
        for dialect in (sqlite.dialect(), mysql.dialect(), postgresql.psycopg.dialect()):
            quick = RedactedJSON().dialect_impl(dialect).bind_processor(dialect)
            general = _GeneralRedactedJSON().dialect_impl(dialect).bind_processor(dialect)
            assert quick is not None and general is not None
            for value in _REDACTED_JSON_VALUES:
                assert repr(quick(value)) == repr(general(value)), (dialect.name, value)
            if registered and dialect.name != "postgresql":
                assert "regSECRETvalue9" not in quick(_REDACTED_JSON_VALUES[1])
                assert f"{MASK}\\\\x00tail" in quick(_REDACTED_JSON_VALUES[2])
    with pytest.raises(TypeError):
        RedactedJSON().dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())({1, 2})


def test_json_text_is_json_dumps_text() -> None:
    """`_json_text` (the encoder `json.dumps` builds, built once) gives `json.dumps`'s text for
    every value it can serialise, None for the others, a circular one included."""
    import json

    circular: list[Any] = [1]
    circular.append(circular)
    values: list[Any] = [
        *_REDACTED_JSON_VALUES[:-1],
        {"nan": float("nan"), "inf": [float("inf"), float("-inf")], "zero": -0.0, "e": 1e16},
        {3: "int key", 2.5: "float key", True: "bool key", None: "none key", "s": 10**30},
        ("a tuple", ["nested", {"deep": [[[]]], "": {}}]),
        '\u2028 \ufeff \x7f "quoted" \\ back',
        3.141592653589793,
        False,
    ]
    for value in values:
        assert _json_text(value) == json.dumps(value), value
    assert _json_text(None) == "null"
    import threading
    import tracemalloc

    for refused in ({1, 2}, {(1, 2): "tuple key"}, [object()], circular):
        assert _json_text(refused) is None
    # A circular value is refused at the first repeat, as by `json.dumps`, not after nesting
    # down to the recursion limit (a large one cost hundreds of MB on the way); and what it
    # left in the thread's markers does not make the next value look circular.
    big: dict[str, Any] = {"text": "x" * 200_000}
    big["self"] = big
    tracemalloc.start()
    try:
        assert _json_text(big) is None
        assert tracemalloc.get_traced_memory()[1] < 5_000_000
    finally:
        tracemalloc.stop()
    shared = {"k": [1, 2]}
    assert _json_text({"a": shared, "b": shared}) == json.dumps({"a": shared, "b": shared})
    # Threads each have their own encoder and markers: a value shared by all is never seen
    # as circular by one because another is inside it.
    texts: set[str | None] = set()

    def encode() -> None:
        for _ in range(2_000):
            texts.add(_json_text({"a": shared, "b": [shared]}))

    threads = [threading.Thread(target=encode) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert texts == {json.dumps({"a": shared, "b": [shared]})}


def test_redacted_json_quick_path_stores_the_general_paths_rows(any_dialect_url: str) -> None:
    """The same stored JSON text from `RedactedJSON` as from SQLAlchemy's general path, on every
    dialect, with a registered secret masked and NUL and lone surrogates made storable."""
    from sqlalchemy import Text, cast

    from datamantri_alerts.secrets import register_secret

    register_secret("regSECRETvalue9")
    with scratch_table(
        any_dialect_url,
        "redacted",
        Column("quick", RedactedJSON),
        Column("general", _GeneralRedactedJSON),
    ) as (engine, table):
        rows = [
            {"id": i, "quick": value, "general": value}
            for i, value in enumerate(_REDACTED_JSON_VALUES, start=1)
        ]
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)
            # An executemany UPDATE too, as the result writer writes.
            conn.execute(
                table.update().where(table.c.id == bindparam("_id")),
                [{"_id": 1, "quick": rows[2]["quick"], "general": rows[2]["general"]}],
            )
        with engine.connect() as conn:
            stored = conn.execute(
                select(table.c.id, cast(table.c.quick, Text), cast(table.c.general, Text))
            ).all()
        assert len(stored) == len(rows)
        for row_id, quick, general in stored:
            assert quick == general, row_id
            assert "regSECRETvalue9" not in (quick or "")
            assert "\\u0000" not in (quick or "") and "\x00" not in (quick or "")


def test_utc_datetime_binds_a_datetime_bound_again_as_the_general_path_does() -> None:
    """`UTCDateTime` keeps the parameter of the last datetime object bound for that object:
    every value, the same object again or not, binds what SQLAlchemy's general path binds."""
    from datetime import timedelta, timezone

    from sqlalchemy.dialects import mysql, postgresql, sqlite

    from datamantri_alerts.store.types import UTCDateTime

    now = datetime(2026, 11, 30, 15, 17, 11, 775145, tzinfo=UTC)
    same_instant = now.astimezone(timezone(timedelta(hours=5, minutes=30)))
    later = now + timedelta(seconds=1)
    sequence = [now, now, same_instant, same_instant, now, None, None, later, now, later, later]
    for dialect in (sqlite.dialect(), mysql.dialect(), postgresql.psycopg.dialect()):
        column = UTCDateTime().dialect_impl(dialect)
        quick = column.bind_processor(dialect)
        general = TypeDecorator.bind_processor(column, dialect)
        assert quick is not None and general is not None
        assert [quick(v) for v in sequence] == [general(v) for v in sequence], dialect.name
        with pytest.raises(ValueError, match="naive"):
            quick(now.replace(tzinfo=None))
        assert quick(now) == general(now)


def test_utc_datetime_rows_written_with_one_datetime_object(any_dialect_url: str) -> None:
    """An executemany binding one datetime object for every row (a batch's `now`) stores it on
    every row, next to rows given other objects of other offsets, on every dialect."""
    from datetime import timedelta, timezone

    from datamantri_alerts.store.types import UTCDateTime

    now = datetime(2026, 11, 30, 15, 17, 11, 775145, tzinfo=UTC)
    other = (now + timedelta(minutes=5)).astimezone(timezone(timedelta(hours=-7)))
    given = [now, now, other, now, None, other, now]
    with scratch_table(any_dialect_url, "times", Column("at", UTCDateTime)) as (engine, table):
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"id": i} for i in range(1, len(given) + 1)])
            conn.execute(
                table.update().where(table.c.id == bindparam("_id")),
                [{"_id": i, "at": at} for i, at in enumerate(given, start=1)],
            )
        with engine.connect() as conn:
            stored = conn.execute(select(table.c.at).order_by(table.c.id)).scalars().all()
        assert stored == given


def test_utc_datetime_reads_what_the_general_path_reads(any_dialect_url: str) -> None:
    """`UTCDateTime` keeps the last value read with its result: every value read, repeated or
    not, is what SQLAlchemy's general path makes of the driver's value (equal, same type,
    tzinfo, fold and offset), on every dialect."""
    from datetime import timedelta, timezone

    from datamantri_alerts.store.types import UTCDateTime

    now = datetime(2026, 11, 30, 15, 17, 11, 775145, tzinfo=UTC)
    other = (now + timedelta(minutes=5)).astimezone(timezone(timedelta(hours=-7)))
    whole = datetime(2026, 11, 30, 15, 17, 11, tzinfo=UTC)
    given = [now, now, now, other, now, None, None, other, other, whole, whole, now, None, now]
    column = UTCDateTime()
    with scratch_table(any_dialect_url, "reads", Column("at", column)) as (engine, table):
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"id": i, "at": at} for i, at in enumerate(given, 1)])
        with engine.connect() as conn:
            for _ in range(2):  # the second time from the processor kept
                read = conn.execute(select(table.c.at).order_by(table.c.id)).scalars().all()
                sent = conn.exec_driver_sql(f"SELECT at FROM {table.name} ORDER BY id")
                coltype = sent.cursor.description[0][1]  # what SQLAlchemy's reader is given
                raw = [row[0] for row in sent.fetchall()]
                dialect = engine.dialect
                general = TypeDecorator.result_processor(
                    column.dialect_impl(dialect), dialect, coltype
                )
                assert general is not None
                expected = [general(value) for value in raw]
                assert read == expected == given

                def shape(value: Any) -> Any:
                    if value is None:
                        return None
                    return (type(value), value.tzinfo, value.fold, value.utcoffset(), value)

                assert [shape(v) for v in read] == [shape(v) for v in expected]
                if engine.dialect.name != "postgresql":  # text, naive datetimes: kept
                    assert read[1] is read[0] and read[2] is read[0]


#: Texts `json.loads` reads. orjson refuses `NaN`, `Infinity` and the lone surrogate, and reads
#: the integer beyond 64 bits as a float: `store.engine.json_loads` gives them to json.
JSON_TEXTS = [
    '{"datasource_id": "wh", "table": "t_00001", "warn_after": {"count": 12, "period": "hour"}}',
    '[1, 2.5, -0.0, 1e-07, true, false, null, "\\u00e9\\u20ac\\ud83d\\ude00", "line\\nbreak"]',
    '{"a": 1, "a": 2}',
    "NaN",
    '{"x": [Infinity, -Infinity]}',
    '{"big": 1180591620717411303424}',
    '"lone \\ud800 surrogate"',
    '{"u64": 18446744073709551615, "i64": -9223372036854775808, "digits": "12345678901234567890"}',
]


def test_the_stores_json_reader_reads_what_json_reads() -> None:
    import json
    import math

    from datamantri_alerts.store.engine import json_loads

    for text in JSON_TEXTS:
        ours, theirs = json_loads(text), json.loads(text)
        assert repr(ours) == repr(theirs) or (
            isinstance(ours, float) and math.isnan(ours) and math.isnan(theirs)
        ), text
        assert type(ours) is type(theirs)
    with pytest.raises(json.JSONDecodeError):
        json_loads('{"unterminated": ')


def test_the_stores_json_reader_counts_digits_before_looking_for_19_in_a_row() -> None:
    """`json_loads` looks for 19 digits in a row only in a text with 19 digits or more: texts
    around that count, in a row or apart, as str and as bytes (invalid UTF-8 too), read as
    json reads them, and the regex alone would send the same ones to json."""
    import json

    from datamantri_alerts.store import engine

    texts = [
        "[" + ", ".join(str(9 * 10 ** (n - 1) + 7) for n in sizes) + "]"
        for sizes in ([18], [19], [20], [21], [9, 9], [9, 10], [10, 10], [18, 1], [1] * 19)
    ]
    texts += [
        '{"n": 123456789012345678}',
        '{"n": -9223372036854775809}',
        '{"f": 0.1234567890123456789}',
        '{"s": "1234567890123456789", "t": 1}',
        '{"é": "€ 12345 😀", "n": 99999999999999999999}',
    ]
    for text in texts:
        digits = sum(c in "0123456789" for c in text)
        in_a_row = engine._LONG_DIGITS.search(text) is not None
        assert not in_a_row or digits >= 19, text
        for given in (text, text.encode()):
            ours, theirs = engine.json_loads(given), json.loads(given)
            assert repr(ours) == repr(theirs) and type(ours) is type(theirs), given
    lone = '["\ud800", 12345678901234567890]'  # a str with a lone surrogate: no UTF-8 of it
    assert repr(engine.json_loads(lone)) == repr(json.loads(lone))
    for invalid in (b'{"n": 12345678901234567890, "x": "\xff"}', b'{"n": 1, "x": "\xff"}'):
        with pytest.raises(UnicodeDecodeError):
            json.loads(invalid)
        with pytest.raises(UnicodeDecodeError):
            engine.json_loads(invalid)


def test_json_columns_read_back_through_the_stores_engine(any_dialect_url: str) -> None:
    """A value orjson reads and one only json reads (an integer beyond 64 bits), through the
    store's own engine (`make_engine`: `json_deserializer`) on every dialect."""
    from datamantri_alerts.store.engine import json_loads, make_engine

    doc = {"nested": {"list": [1, 2.5, "é€😀", None, True]}, "big": 2**70}
    table = Table(
        f"jsonread_{uuid.uuid4().hex[:10]}",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("doc", JSONType),
    )
    engine = make_engine(any_dialect_url)
    assert engine.dialect._json_deserializer is json_loads  # type: ignore[attr-defined]
    table.create(engine)
    try:
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"id": 1, "doc": doc}, {"id": 2, "doc": {"small": 1}}])
        with engine.connect() as conn:
            rows = conn.execute(select(table.c.doc).order_by(table.c.id)).scalars().all()
        assert rows == [doc, {"small": 1}]
    finally:
        table.drop(engine)
        engine.dispose()
