"""Encryption at rest: re-encrypt the secret columns under the current key (`secrets rotate`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, column, select, table, update
from sqlalchemy.orm import Session

from datamantri_alerts.errors import InputError
from datamantri_alerts.store.crypto import (
    JSON_MARKER,
    KEY_ENV,
    TEXT_PREFIX,
    current_cipher,
    is_encrypted,
)

#: (table, key column, key type, secret column, is JSON)
SECRET_COLUMNS = (
    ("alerts", "id", Integer, "recipients", True),
    ("datasources", "id", String, "url", False),
    ("notifications", "id", Integer, "recipient", False),
)
BATCH = 500


@dataclass
class RotationReport:
    rewritten: int = 0
    encrypted_before: int = 0
    plain_before: int = 0


def _rotate_token(cipher: Any, value: str) -> str:
    if value.startswith(TEXT_PREFIX):
        token = cipher.rotate(value[len(TEXT_PREFIX) :].encode()).decode()
    else:
        token = cipher.encrypt(value.encode()).decode()
    return TEXT_PREFIX + token


def rotate_secrets(session: Session) -> RotationReport:
    """Encrypt every stored secret with the first key of ALERTS_SECRET_KEY.

    Values encrypted under an older key (listed after the first) are re-encrypted; plain values
    are encrypted. Works in batches so a large outbox does not sit in memory.
    """
    cipher = current_cipher()
    if cipher is None:
        raise InputError(f"set {KEY_ENV} to the new key (then the old ones, comma separated)")
    report = RotationReport()
    for table_name, key_name, key_type, column_name, is_json in SECRET_COLUMNS:
        value_type = JSON if is_json else Text
        raw = table(table_name, column(key_name, key_type), column(column_name, value_type))
        key_col, value_col = raw.c[key_name], raw.c[column_name]
        last: Any = None
        while True:
            query = select(key_col, value_col).order_by(key_col).limit(BATCH)
            if last is not None:
                query = query.where(key_col > last)
            rows = session.execute(query).all()
            if not rows:
                break
            for key, value in rows:
                last = key
                if value is None:
                    continue
                if is_encrypted(value):
                    report.encrypted_before += 1
                else:
                    report.plain_before += 1
                if is_json:
                    inner = (
                        value[JSON_MARKER]
                        if is_encrypted(value)
                        else json.dumps(value, sort_keys=True)
                    )
                    new_value: Any = {JSON_MARKER: _rotate_token(cipher, inner)}
                else:
                    new_value = _rotate_token(cipher, value)
                session.execute(update(raw).where(key_col == key).values({column_name: new_value}))
                report.rewritten += 1
    return report


def scrub_sqlite(engine: Any) -> None:
    """Rewrite a SQLite file so pages that held the old (plain or old-key) values are gone."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()  # outside SQLAlchemy's BEGIN: VACUUM needs autocommit
    try:
        for statement in (
            "PRAGMA wal_checkpoint(TRUNCATE)",
            "VACUUM",
            "PRAGMA wal_checkpoint(TRUNCATE)",
        ):
            raw.driver_connection.execute(statement)
    finally:
        raw.close()
