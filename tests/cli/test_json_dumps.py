"""`--json` output is made by orjson: the text `json.dumps(indent=2, ensure_ascii=False)` made
with our default for times, sets and dataclasses (floats with an exponent aside: `1e-7`, not
`1e-07`); what orjson refuses is still written."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from datamantri_alerts.cli.context import _json_default, json_dumps


@dataclass
class Point:
    x: int


class Ratio(float):
    pass


def reference(data: object) -> str:
    return json.dumps(data, indent=2, default=_json_default, ensure_ascii=False)


def test_the_text_is_what_json_made() -> None:
    data = {
        "evaluated": 2,
        "results": [
            {"id": 1, "name": "naïve ✓ \u202e", "severity": None, "ok": True, "ratio": 0.1},
            {"id": 2, "tags": [], "empty": {}, "nested": [[1, 2], {"a": "b"}]},
        ],
        "at": datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC),
        "local": datetime(2026, 11, 30, 12, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        "naive": datetime(2026, 11, 30, 12, 0),
        "day": date(2026, 11, 30),
        "channels": {"slack"},
        "pair": (1, "two"),
        "point": Point(3),
        "ratio": Ratio(1.5),
        7: "an integer key",
        "control": "a\x00b\x1bc\n",
    }
    assert json_dumps(data) == reference(data)


def test_what_orjson_refuses_is_still_written() -> None:
    data = {"big": 2**70, "list": [2**65]}
    assert json_dumps(data) == reference(data)
    assert json.loads(json_dumps(data)) == {"big": 2**70, "list": [2**65]}


def test_a_float_that_is_not_finite_is_null_not_invalid_json() -> None:
    assert json.loads(json_dumps({"x": float("nan"), "y": float("inf")})) == {"x": None, "y": None}


def test_a_float_with_an_exponent_is_the_same_number() -> None:
    """orjson writes `1e-7` where json wrote `1e-07`: the same number, valid JSON."""
    data = {"tiny": 1e-07, "huge": 1.5e300, "ratio": 0.1}
    assert json.loads(json_dumps(data)) == data
