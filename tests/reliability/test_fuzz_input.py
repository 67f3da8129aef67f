"""Hypothesis-generated alert documents and YAML files through `create --from-file` and `sync`.

Every case either succeeds or exits 2 with one line; never a traceback; on error the store is
unchanged. The default run tries a few hundred cases; `-m slow` runs thousands.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Cli, dump_store

QUICK = int(os.environ.get("ALERTS_FUZZ_EXAMPLES", "150"))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=3000),
    st.sampled_from(
        [
            "09:00",
            "25:00",
            "+14155550100",
            "+0987654321",
            "a@b.co",
            "${X}",
            "https://hooks.slack.com/x",
            "http://10.0.0.1/x",
            "UTC",
            "Mars/Base",
            "abc-123",
            "p1",
            "select 1",
            "<redacted>",
            "sql",
            "email",
        ]
    ),
)
garbage = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
TYPES = [
    "datasource_failure",
    "pipeline_failure",
    "query_slow",
    "dashboard_failure",
    "sla_breach",
    "sql",
    "nope",
    "",
]
CONFIG_KEYS = [
    "datasource_id",
    "pipeline_id",
    "dashboard_id",
    "threshold_seconds",
    "query",
    "expected_load_time",
    "timezone",
    "tolerance_minutes",
    "check_last_n_runs",
    "check_interval_minutes",
    "failures_before_alert",
    "table",
    "timestamp_column",
]


@st.composite
def alert_documents(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(garbage)
    doc: dict[str, Any] = {}
    doc["name"] = draw(st.one_of(st.text(max_size=60), garbage))
    doc["condition_type"] = draw(st.one_of(st.sampled_from(TYPES), garbage))
    doc["condition_config"] = draw(
        st.one_of(st.dictionaries(st.sampled_from(CONFIG_KEYS), garbage, max_size=6), garbage)
    )
    doc["channels"] = draw(
        st.one_of(
            st.lists(st.sampled_from(["email", "slack", "teams", "whatsapp", "fax"]), max_size=4),
            garbage,
        )
    )
    doc["recipients"] = draw(
        st.one_of(
            st.dictionaries(
                st.sampled_from(["email", "slack", "teams", "whatsapp", "x"]), garbage, max_size=4
            ),
            garbage,
        )
    )
    for key in (
        "description",
        "severity",
        "is_active",
        "repeat_interval_minutes",
        "pending_evaluations",
        "muted_until",
        "notify_on_resolve",
        "extra",
    ):
        if draw(st.booleans()):
            doc[key] = draw(garbage)
    return doc


def _check(result: Any, url: str, before: dict[str, Any]) -> None:
    assert result.exception is None, repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2), (result.exit_code, result.output[-500:])
    if result.exit_code == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-500:]
        assert dump_store(url) == before


@pytest.fixture
def seeded(cli: Cli, sqlite_url: str) -> tuple[Cli, str]:
    assert (
        cli("datasources", "add", "abc-123", "--name", "DS", "--url", "sqlite:///x.db").exit_code
        == 0
    )
    assert cli("pipelines", "add", "p1", "--name", "P").exit_code == 0
    return cli, sqlite_url


def _run_create(seeded: tuple[Cli, str], tmp_path: Path, doc: Any, as_json: bool) -> None:
    cli, url = seeded
    path = tmp_path / ("doc.json" if as_json else "doc.yaml")
    if as_json:
        try:
            path.write_text(json.dumps(doc, allow_nan=True))
        except (TypeError, ValueError):
            return
    else:
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    before = dump_store(url)
    _check(cli("create", "--from-file", str(path)), url, before)


@settings(max_examples=QUICK, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=alert_documents(), as_json=st.booleans())
def test_create_from_file_fuzz(
    seeded: tuple[Cli, str], tmp_path: Path, doc: Any, as_json: bool
) -> None:
    _run_create(seeded, tmp_path, doc, as_json)


@st.composite
def sync_files(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 5)) == 0:
        return draw(garbage)
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["datasources"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "id": st.one_of(st.sampled_from(["abc-123", "d2"]), garbage),
                        "name": garbage,
                        "url": st.one_of(
                            st.sampled_from(["sqlite:///a.db", "${U}", "nonsense"]), garbage
                        ),
                    }
                ),
                max_size=3,
            )
            | garbage
        )
    if draw(st.booleans()):
        doc["pipelines"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "id": st.sampled_from(["p1", "p2"]),
                        "name": st.text(max_size=9),
                        "runs": garbage,
                    }
                ),
                max_size=2,
            )
            | garbage
        )
    doc["alerts"] = draw(st.lists(alert_documents(), max_size=3) | garbage)
    if draw(st.integers(0, 4)) == 0:
        doc[draw(st.text(max_size=8))] = draw(garbage)
    return doc


def _run_sync(seeded: tuple[Cli, str], tmp_path: Path, doc: Any, mangle: int) -> None:
    cli, url = seeded
    text = yaml.safe_dump(doc, allow_unicode=True)
    if mangle == 1:
        text = text[: len(text) // 2] + "\n  - [:"
    elif mangle == 2:
        text = "\t" + text
    path = tmp_path / "alerts.yaml"
    path.write_text(text)
    before = dump_store(url)
    _check(cli("sync", str(path), "--prune", "--yes"), url, before)


@settings(max_examples=QUICK, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=sync_files(), mangle=st.integers(0, 4))
def test_sync_fuzz(seeded: tuple[Cli, str], tmp_path: Path, doc: Any, mangle: int) -> None:
    _run_sync(seeded, tmp_path, doc, mangle)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=alert_documents(), as_json=st.booleans())
def test_create_from_file_fuzz_long(
    seeded: tuple[Cli, str], tmp_path: Path, doc: Any, as_json: bool
) -> None:
    _run_create(seeded, tmp_path, doc, as_json)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=sync_files(), mangle=st.integers(0, 4))
def test_sync_fuzz_long(seeded: tuple[Cli, str], tmp_path: Path, doc: Any, mangle: int) -> None:
    _run_sync(seeded, tmp_path, doc, mangle)
