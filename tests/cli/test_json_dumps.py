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


def test_json_text_leaves_ascii_alone_but_the_characters_print_json_looks_for() -> None:
    """`print_json` skips `escaping.json_text` for ASCII text with none of
    `JSON_TEXT_ESCAPES_ASCII`: `json_text` changes exactly those ASCII characters."""
    from datamantri_alerts.cli.context import JSON_TEXT_ESCAPES_ASCII
    from datamantri_alerts.escaping import json_text

    changed = {chr(code) for code in range(128) if json_text(chr(code)) != chr(code)}
    assert changed == set(JSON_TEXT_ESCAPES_ASCII)


def test_the_document_printed_is_json_text_of_json_dumps() -> None:
    """`json_document` (what `print_json` prints) is `json_text(json_dumps(data))`, whether it
    skips `json_text` or not: ASCII, raw controls and DEL (in keys orjson leaves to `json`),
    terminal controls and bidi characters, escapes."""
    from datamantri_alerts.cli.context import json_document
    from datamantri_alerts.escaping import json_text

    samples: list[object] = [
        {"evaluated": 1, "results": [{"id": 1, "name": "plain", "summary": "ok\tfine\n"}]},
        {"esc": "\x1b[31mred\x1b[0m", "nul": "a\x00b", "del": "x\x7fy", "cr": "a\r\nb"},
        {"name": "naïve ✓", "bidi": "\u202eevil", "sep": "a\u2028b", "c1": "\x85\x9b"},
        {2**70: "\x7f", "big": 2**70},  # orjson refuses: json's text
        [Point(1), datetime(2026, 11, 30, 12, 0, tzinfo=UTC), {"a"}],
        "",
        [],
    ]
    samples += [{"c": chr(code)} for code in range(0x00, 0xA0)]
    for data in samples:
        assert json_document(data) == json_text(json_dumps(data)), data


def test_a_runs_results_as_json_are_each_results_fields_in_order() -> None:
    """`RunSummary.as_json`'s results (`AlertResult.all_as_json`) are each result's fields,
    in their order, as `AlertResult.as_json` gives them."""
    from dataclasses import asdict

    from datamantri_alerts.services.run_summary import AlertResult, RunSummary

    summary = RunSummary(run_id=3)
    for i in range(3):
        summary.results.append(
            AlertResult(
                id=i,
                name=f"alert {i}",
                condition_type="freshness",
                outcome="firing" if i else "ok",
                state="firing" if i else "ok",
                severity="warning",
                summary=f"summary {i}",
                duration_ms=i * 10,
            )
        )
    results = summary.as_json()["results"]
    assert [list(r.items()) for r in results] == [list(asdict(r).items()) for r in summary.results]
    assert [r.as_json() for r in summary.results] == results
    assert list(summary.as_json()) == [
        "evaluated",
        "results",
        "notifications",
        "overdue_notifications",
    ]
