"""`checks.values.json_safe`: what a check hands back becomes JSON a person can read, whatever
its shape; floats that JSON has no spelling for become their text, at the top and inside a
check's details alike."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from datamantri_alerts.checks.values import VALUE_LIMIT, json_safe


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        (1.5, 1.5),
        (Decimal("NaN"), "NaN"),
        (Decimal("2.0"), 2),
        (timedelta(seconds=90), 90.0),
    ],
)
def test_values_json_cannot_spell_become_text_at_the_top_and_in_details(
    value: object, expected: object
) -> None:
    assert json_safe(value) == expected
    details = json_safe({"age_seconds": value, "note": "x"})
    assert details == {"age_seconds": expected, "note": "x"}
    # Strict JSON (no NaN, no Infinity) accepts the result.
    json.dumps(details, allow_nan=False)


def test_details_keep_their_keys_order_and_clip_long_text() -> None:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    details = json_safe({"b": 1, "a": "y" * (VALUE_LIMIT + 10), "when": at, "f": 0.25})
    assert list(details) == ["b", "a", "when", "f"]
    assert len(details["a"]) == VALUE_LIMIT
    assert details["when"] == at.isoformat()
    assert details["f"] == 0.25
