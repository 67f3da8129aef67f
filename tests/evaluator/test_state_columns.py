"""What the result writer reads of an alert (`_STATE_COLUMNS`): the interval of its condition
configuration and its flap settings read without decoding what need not be, and the same as
decoding the columns and calling `check_interval` on every dialect."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text, update

from datamantri_alerts.services.due import check_interval
from datamantri_alerts.services.results import (
    _MESSAGE_COLUMNS,
    _STATE_COLUMNS,
    AlertMessage,
    AlertState,
)
from datamantri_alerts.store.models import Alert
from tests.evaluator.conftest import Flags, make_alerts

#: Stored condition configurations (as JSON values, or as raw JSON text): no interval, valid
#: ones, values `check_interval` refuses, the key nested, escapes in the text.
CONFIGS: list[Any] = [
    {"file": "f", "key": "k"},
    {"file": "f", "key": "k", "check_interval_minutes": 15},
    {"check_interval_minutes": 0.5},
    {"check_interval_minutes": True},
    {"check_interval_minutes": "10"},
    {"check_interval_minutes": -3},
    {"check_interval_minutes": None},
    {"nested": {"check_interval_minutes": 30}},
    {"note": 'quote " and backslash \\', "check_interval_minutes": 7},
    {"note": "caf\u00e9 \U0001f600"},
    {},
    text('{"check\\u005finterval_minutes": 20}'),
    text('{"note": "\\\\", "check_interval_minutes": 9}'),
    text('{"table": "t_1", "check_interval_minutes":45}'),
]
#: Stored flap settings.
FLAP_SETTINGS: list[Any] = [None, {}, {"window": 10}, {"enabled": False}]


def test_state_columns_read_what_decoding_the_columns_reads(store: Any, flags: Flags) -> None:
    ids = make_alerts(store, flags, [{"name": f"cfg-{i}"} for i in range(len(CONFIGS))])
    columns = Alert.__table__.c
    with store.transaction() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        for i, (alert_id, config) in enumerate(zip(ids, CONFIGS, strict=True)):
            flap = FLAP_SETTINGS[i % len(FLAP_SETTINGS)]
            if isinstance(config, dict):
                values = {"condition_config": config, "flap_detection": flap}
                session.execute(update(Alert.__table__).where(columns.id == alert_id), values)
            else:  # raw JSON text, as another writer may have spelled it
                raw = "CAST(:raw AS JSONB)" if postgres else ":raw"
                session.execute(
                    text(f"UPDATE alerts SET condition_config = {raw} WHERE id = :id"),
                    {"raw": config.text, "id": alert_id},
                )
    with store.session() as session:
        read = {row.id: row for row in session.execute(select(*_STATE_COLUMNS))}
        decoded = {
            row.id: row
            for row in session.execute(
                select(columns.id, columns.condition_config, columns.flap_detection)
            )
        }
    assert set(read) == set(decoded) == set(ids)
    intervals = []
    for alert_id in ids:
        assert read[alert_id].check_interval == check_interval(
            decoded[alert_id].condition_config
        ), decoded[alert_id].condition_config
        assert read[alert_id].flap_detection == decoded[alert_id].flap_detection
        intervals.append(read[alert_id].check_interval.total_seconds() / 60)
    assert intervals == [5, 15, 0.5, 5, 5, 5, 5, 5, 7, 5, 5, 20, 9, 45]


def test_alert_state_names_the_state_columns_in_their_order() -> None:
    """The writer reads `_STATE_COLUMNS` rows into `AlertState` by position."""
    assert AlertState._fields == tuple(column.key for column in _STATE_COLUMNS)


def test_message_fields_are_the_message_columns_in_order() -> None:
    """The writer reads `_MESSAGE_COLUMNS` rows into `AlertMessage` by position."""
    assert AlertMessage._fields == tuple(column.key for column in _MESSAGE_COLUMNS)
