"""Input the store must never see: numbers that overflow time arithmetic, documents nested to
exhaust the stack, keys given twice, control characters in text, and stores made by a newer
release. Each is one line naming the field, exit 2, nothing written.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from datamantri_alerts.store.engine import normalize_url
from tests.cli.test_bad_input import _alert, _assert_clean_refusal, _seed, _write
from tests.conftest import Cli, dump_store


def _refused_file(
    cli: Cli, url: str, path: Path, content: Any, words: list[str], command: str = "create"
) -> None:
    before = dump_store(url)
    args = ["create", "--from-file"] if command == "create" else ["sync"]
    result = cli(*args, _write(path, content))
    _assert_clean_refusal(result, words)
    assert dump_store(url) == before


# --------------------------------------------------------------------------- numbers

#: (alert type, base config) for each built-in type.
TYPES: dict[str, dict[str, Any]] = {
    "datasource_failure": {"datasource_id": "ds1"},
    "pipeline_failure": {"pipeline_id": "p1"},
    "dashboard_failure": {"dashboard_id": "d1"},
    "query_slow": {"datasource_id": "ds1", "threshold_seconds": 5},
    "sql": {"datasource_id": "ds1", "query": "select 1"},
    "sla_breach": {"datasource_id": "ds1", "expected_load_time": "09:00"},
}

#: Every numeric config field of every built-in type.
NUMERIC_FIELDS: list[tuple[str, str]] = [
    *((kind, "check_interval_minutes") for kind in TYPES),
    *((kind, "timeout_seconds") for kind in TYPES),
    ("datasource_failure", "failures_before_alert"),
    ("pipeline_failure", "check_last_n_runs"),
    ("pipeline_failure", "max_hours_without_run"),
    ("dashboard_failure", "check_last_n_runs"),
    ("dashboard_failure", "max_hours_without_run"),
    ("query_slow", "threshold_seconds"),
    ("sql", "max_rows"),
    ("sla_breach", "tolerance_minutes"),
]


def test_max_hours_without_run_1e308_is_refused(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    """The issue's value: accepted before, then every evaluation crashed with OverflowError."""
    _seed(cli)
    document = _alert(condition_config={"pipeline_id": "p1", "max_hours_without_run": 1e308})
    _refused_file(
        cli,
        sqlite_url,
        tmp_path / "a.json",
        document,
        ["condition_config.max_hours_without_run", "less than or equal to 8784", "1e+308"],
    )
    from_flags = cli(
        "create",
        "--name",
        "x",
        "--type",
        "pipeline_failure",
        "--config",
        "pipeline_id=p1",
        "--config",
        "max_hours_without_run=1e308",
        "--channel",
        "email",
        "--email",
        "ops@example.com",
    )
    _assert_clean_refusal(from_flags, ["condition_config.max_hours_without_run"])


@pytest.mark.parametrize(
    ("kind", "field"), NUMERIC_FIELDS, ids=[f"{k}.{f}" for k, f in NUMERIC_FIELDS]
)
@pytest.mark.parametrize("value", ["1e308", "Infinity", "NaN", "-1", "true", "1e400"])
def test_every_numeric_config_field_is_bounded(kind: str, field: str, value: str) -> None:
    """The whole matrix through the validator every path uses (fast, no store)."""
    from datamantri_alerts.documents import parse_json
    from datamantri_alerts.errors import InputError
    from datamantri_alerts.schema import validate_alert

    config = json.dumps({**TYPES[kind], field: "@"}).replace('"@"', value)
    content = json.dumps(_alert(condition_type=kind, condition_config={})).replace(
        '"condition_config": {}', f'"condition_config": {config}'
    )
    with pytest.raises(InputError) as refused:
        validate_alert(parse_json(content, "a.json"))
    assert refused.value.field == f"condition_config.{field}"


@pytest.mark.parametrize(
    ("kind", "field"), [("sql", "max_rows"), ("sla_breach", "tolerance_minutes")]
)
def test_numeric_config_refusal_writes_nothing(
    cli: Cli, sqlite_url: str, tmp_path: Path, kind: str, field: str
) -> None:
    _seed(cli)
    document = _alert(condition_type=kind, condition_config={**TYPES[kind], field: 1e308})
    _refused_file(cli, sqlite_url, tmp_path / "a.json", document, [f"condition_config.{field}"])


@pytest.mark.parametrize("field", ["repeat_interval_minutes", "pending_evaluations"])
@pytest.mark.parametrize("value", [10**12, -1, True])
def test_alert_numbers_are_bounded(
    cli: Cli, sqlite_url: str, tmp_path: Path, field: str, value: Any
) -> None:
    _seed(cli)
    _refused_file(cli, sqlite_url, tmp_path / "a.json", _alert(**{field: value}), [field])


def test_largest_accepted_values_evaluate_without_overflow(
    cli: Cli, sqlite_url: str, tmp_path: Path
) -> None:
    """At the upper bounds, evaluation does its time arithmetic and reports normally."""
    _seed(cli)
    document = _alert(
        name="Biggest",
        condition_config={
            "pipeline_id": "p1",
            "max_hours_without_run": 8784,
            "check_last_n_runs": 1000,
            "check_interval_minutes": 10_080,
        },
        repeat_interval_minutes=527_040,
        pending_evaluations=1000,
        muted_until="8999-12-31T00:00:00+00:00",
    )
    created = cli("create", "--from-file", _write(tmp_path / "big.json", document))
    assert created.exit_code == 0, created.output
    result = cli("evaluate", "--alert", "Biggest", "--json")
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert result.exit_code in (0, 1), result.output
    (only,) = result.json()["results"]
    assert only["name"] == "Biggest" and only["outcome"] == "firing"  # no run in 8784 h


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0001-01-01T00:00:00+14:00", ["muted_until", "out of range"]),
        ("9999-12-31T23:59:59-05:00", ["muted_until", "out of range"]),
        ("9500-01-01T00:00:00+00:00", ["muted_until", "between 1970-01-01 and 9000-01-01"]),
        ("2026-01-01T00:00:00", ["muted_until", "time zone offset"]),
    ],
)
def test_muted_until_is_bounded(
    cli: Cli, sqlite_url: str, tmp_path: Path, value: str, words: list[str]
) -> None:
    _seed(cli)
    _refused_file(cli, sqlite_url, tmp_path / "a.json", _alert(muted_until=value), words)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["mute", "Existing", "--for", "99999999999999w"], ["--for", "at most 100 years"]),
        (["mute", "Existing", "--for", "400d"], ["--for", "366 days"]),
        (["history", "--since", "9999999999d"], ["--since", "at most 100 years"]),
        (["history", "--since", "0001-01-01T00:00:00+14:00"], ["--since", "out of range"]),
        (["history", "prune", "--older-than", "1" + "0" * 30 + "d"], ["--older-than"]),
        (["history", "prune", "--older-than", "0d"], ["--older-than", "more than zero"]),
        (["status", "--expected-interval", "99999999999w"], ["--expected-interval"]),
        (
            ["runs", "record", "p1", "--status", "failed", "--started-at", "0001-01-01T00:00+05"],
            ["--started-at", "out of range"],
        ),
    ],
)
def test_cli_durations_are_bounded(
    cli: Cli, sqlite_url: str, args: list[str], words: list[str]
) -> None:
    _seed(cli)
    before = dump_store(sqlite_url)
    _assert_clean_refusal(cli(*args), words)
    assert dump_store(sqlite_url) == before


@pytest.mark.parametrize(
    "args",
    [
        ["history", "--limit", "0"],
        ["history", "--limit", "1000000000000"],
        ["evaluate", "--concurrency", "0"],
        ["evaluate", "--concurrency", "100000"],
        ["runs", "list", "--limit", "-5"],
        ["runs", "record", "p1", "--status", "failed", "--exit-code", "99999999999999999999"],
    ],
)
def test_cli_counts_are_bounded(cli: Cli, sqlite_url: str, args: list[str]) -> None:
    _seed(cli)
    before = dump_store(sqlite_url)
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert dump_store(sqlite_url) == before


@pytest.mark.parametrize("value", ["0", "-1", "86401", "1e308", "nan", "ten minutes"])
def test_lease_seconds_that_are_not_a_lease_are_refused(
    cli: Cli, sqlite_url: str, value: str
) -> None:
    """One line naming the variable, exit 2, nothing written (no run recorded)."""
    _seed(cli)
    before = dump_store(sqlite_url)
    result = cli("evaluate", env={"ALERTS_LEASE_SECONDS": value})
    _assert_clean_refusal(
        result, ["ALERTS_LEASE_SECONDS", "above 0 and at most 86400", repr(value)]
    )
    assert dump_store(sqlite_url) == before


@pytest.mark.parametrize("value", ["5", "59.9"])
def test_a_lease_shorter_than_a_minute_is_raised_to_one_with_a_warning(
    cli: Cli, sqlite_url: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lease shorter than a minute runs out under a live run (its renewals come from loops
    busy for seconds at a time): another evaluator would check its alerts, or send its
    notifications, a second time. Earlier releases took it, so an upgraded host keeps running
    (a refusal would stop every cron run), with a minute's lease and a warning saying so."""
    from datamantri_alerts.settings import MIN_LEASE_SECONDS, lease_setting

    monkeypatch.setenv("ALERTS_LEASE_SECONDS", value)
    lease, warning = lease_setting()
    assert lease == timedelta(seconds=MIN_LEASE_SECONDS)
    assert warning is not None and repr(value) in warning
    _seed(cli)
    result = cli("evaluate", "--json", env={"ALERTS_LEASE_SECONDS": value})
    assert result.exit_code in (0, 1), result.output
    assert "evaluated" in result.json()
    warned = [line for line in result.stderr.splitlines() if "ALERTS_LEASE_SECONDS" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: "), result.stderr
    assert "leases of 60 s are used" in warned[0]


def test_a_lease_of_a_minute_or_more_is_taken_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    from datamantri_alerts.settings import lease_setting

    for value, seconds in (("60", 60), ("600.5", 600.5), ("86400", 86400)):
        monkeypatch.setenv("ALERTS_LEASE_SECONDS", value)
        assert lease_setting() == (timedelta(seconds=seconds), None)
    monkeypatch.delenv("ALERTS_LEASE_SECONDS")
    assert lease_setting() == (timedelta(seconds=600), None)


# --------------------------------------------------------------------------- nesting


def test_json_nested_100000_deep_is_refused(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    """The issue's value: `internal error: RecursionError`, exit 1 before."""
    _seed(cli)
    deep = "[" * 100_000 + "]" * 100_000
    content = json.dumps(_alert()).replace('"email"]', f'"email", {deep}]', 1)
    _refused_file(cli, sqlite_url, tmp_path / "a.json", content, ["a.json", "nested too deeply"])


def test_yaml_nested_100000_deep_is_refused(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    _seed(cli)
    content = "name: x\ndescription: " + "[" * 100_000 + "]" * 100_000 + "\n"
    _refused_file(cli, sqlite_url, tmp_path / "a.yaml", content, ["a.yaml", "nested too deeply"])


def test_sync_file_nested_100000_deep_is_refused(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    _seed(cli)
    content = "alerts:\n  - " + "{a: " * 100_000 + "1" + "}" * 100_000 + "\n"
    _refused_file(cli, sqlite_url, tmp_path / "alerts.yaml", content, ["nested too deeply"], "sync")


def test_moderately_deep_document_is_refused_with_its_path(
    cli: Cli, sqlite_url: str, tmp_path: Path
) -> None:
    """Deep enough to parse, too deep to accept: the limit names where it was crossed."""
    _seed(cli)
    nested: Any = "x"
    for _ in range(40):
        nested = {"k": nested}
    document = _alert(recipients={"email": ["ops@example.com"], "slack": nested})
    _refused_file(
        cli, sqlite_url, tmp_path / "a.json", document, ["recipients.slack", "nested more than 32"]
    )


def test_config_flag_nested_deep_is_refused(cli: Cli, sqlite_url: str) -> None:
    _seed(cli)
    before = dump_store(sqlite_url)
    deep = "[" * 100_000 + "]" * 100_000
    result = cli("create", "--name", "x", "--type", "sql", "--config", f"query={deep}")
    _assert_clean_refusal(result, ["--config", "nested too deeply"])
    assert dump_store(sqlite_url) == before


def test_yaml_alias_bomb_is_refused(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    _seed(cli)
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for n in range(1, 8):
        lines.append(f"a{n}: &a{n} [" + ",".join([f"*a{n - 1}"] * 10) + "]")
    content = "\n".join([*lines, "name: bomb", "description: *a7", ""])
    _refused_file(cli, sqlite_url, tmp_path / "a.yaml", content, ["more than 500000 values"])


# --------------------------------------------------------------------------- duplicate keys


def test_duplicate_is_active_in_yaml_is_refused_with_path_and_line(
    cli: Cli, sqlite_url: str, tmp_path: Path
) -> None:
    """The issue's example: `is_active: true` then `is_active: false` was "last one wins"."""
    _seed(cli)
    content = (
        "name: Dup\n"
        "condition_type: pipeline_failure\n"
        "condition_config: {pipeline_id: p1}\n"
        "is_active: true\n"
        "channels: [email]\n"
        "recipients: {email: [ops@example.com]}\n"
        "is_active: false\n"
    )
    _refused_file(
        cli, sqlite_url, tmp_path / "a.yaml", content, ["is_active", "duplicate key", "line 7"]
    )


def test_duplicate_key_in_json_is_refused_with_path_and_line(
    cli: Cli, sqlite_url: str, tmp_path: Path
) -> None:
    _seed(cli)
    content = (
        "{\n"
        '  "name": "Dup",\n'
        '  "condition_type": "pipeline_failure",\n'
        '  "condition_config": {"pipeline_id": "p1", "check_last_n_runs": 1,\n'
        '                       "check_last_n_runs": 3},\n'
        '  "channels": ["email"],\n'
        '  "recipients": {"email": ["ops@example.com"]}\n'
        "}\n"
    )
    _refused_file(
        cli,
        sqlite_url,
        tmp_path / "a.json",
        content,
        ["condition_config.check_last_n_runs", "duplicate key", "line 5"],
    )


def test_duplicate_key_in_sync_file_names_its_path(
    cli: Cli, sqlite_url: str, tmp_path: Path
) -> None:
    _seed(cli)
    content = "pipelines:\n  - id: p9\n    name: one\n    name: two\nalerts: []\n"
    _refused_file(
        cli,
        sqlite_url,
        tmp_path / "alerts.yaml",
        content,
        ["pipelines[0].name", "duplicate key", "line 4"],
        "sync",
    )


def test_same_key_in_different_mappings_is_fine(cli: Cli, tmp_path: Path) -> None:
    _seed(cli)
    content = (
        "datasources:\n"
        "  - {id: ds1, name: DS, url: 'sqlite:///x.db'}\n"
        "pipelines:\n"
        "  - {id: p1, name: P1}\n"
        "  - {id: p2, name: P2}\n"
    )
    result = cli("sync", _write(tmp_path / "alerts.yaml", content))
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------- control characters


def _nul_name_refused(url: str, tmp_path: Path) -> None:
    cli = Cli(url)
    _seed(cli)
    before = dump_store(url)
    from_file = cli("create", "--from-file", _write(tmp_path / "a.json", _alert(name="a\x00b")))
    _assert_clean_refusal(from_file, ["name", "NUL"])
    from_flags = cli(
        "create",
        "--name",
        "a\x00b",
        "--type",
        "pipeline_failure",
        "--config",
        "pipeline_id=p1",
    )
    _assert_clean_refusal(from_flags, ["--name", "NUL"])
    renamed = cli("edit", "Existing", "--name", "x\x00")
    _assert_clean_refusal(renamed, ["--name", "NUL"])
    assert dump_store(url) == before


def test_nul_in_alert_name_is_refused_on_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    _nul_name_refused(sqlite_url, tmp_path)


def test_nul_in_alert_name_is_refused_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    """The issue: stored on SQLite, exit 1 on PostgreSQL. Now refused alike on both."""
    _nul_name_refused(pg_url, tmp_path)


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (_alert(description="a\x00b"), ["description", "NUL"]),
        (_alert(description="bell\x07"), ["description", "U+0007"]),
        (_alert(name="two\nlines"), ["name", "U+000A"]),
        (_alert(name="tab\there"), ["name", "U+0009"]),
        (_alert(recipients={"email": ["ops@example.com\x00"]}), ["recipients.email[0]", "NUL"]),
        (
            _alert(condition_type="sql", condition_config={"datasource_id": "ds1", "query": "\0"}),
            ["condition_config.query", "NUL"],
        ),
        (_alert(condition_config={"pipeline_id": "p1\x1b[31m"}), ["pipeline_id", "U+001B"]),
        (_alert(channels=["email\x00"]), ["channels[0]", "NUL"]),
        ({**_alert(), "bad\x00key": 1}, ["key", "NUL"]),
    ],
)
def test_control_characters_in_document_text_are_refused(
    cli: Cli, sqlite_url: str, tmp_path: Path, document: dict[str, Any], words: list[str]
) -> None:
    _seed(cli)
    _refused_file(cli, sqlite_url, tmp_path / "a.json", document, words)


def test_newlines_and_tabs_in_free_text_are_kept(cli: Cli, tmp_path: Path) -> None:
    _seed(cli)
    document = _alert(name="Multi", description="line one\n\tline two")
    assert cli("create", "--from-file", _write(tmp_path / "m.json", document)).exit_code == 0
    shown = cli("show", "Multi", "--json").json()
    assert shown["description"] == "line one\n\tline two"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["list", "--search", "a\x00b"], ["--search", "NUL"]),
        (["show", "Exi\x00sting"], ["REF", "NUL"]),
        (["mute", "Existing", "--for", "1h", "--reason", "r\x1b]8;;x"], ["--reason", "U+001B"]),
        (["datasources", "add", "ds2", "--name", "N\x00", "--url", "sqlite:///y.db"], ["--name"]),
        (["pipelines", "add", "p2", "--name", "P\x07"], ["--name", "U+0007"]),
        (["history", "resolve", "1", "--note", "n\x00"], ["--note", "NUL"]),
        (["--hostname", "h\x00", "evaluate"], ["--hostname", "NUL"]),
        (["--hostname", "h" * 201, "evaluate"], ["--hostname", "at most 200"]),
    ],
)
def test_control_characters_in_cli_values_are_refused(
    cli: Cli, sqlite_url: str, args: list[str], words: list[str]
) -> None:
    _seed(cli)
    before = dump_store(sqlite_url)
    _assert_clean_refusal(cli(*args), words)
    assert dump_store(sqlite_url) == before


def test_nul_in_search_and_ref_is_refused_on_postgresql(pg_url: str) -> None:
    """PostgreSQL cannot even compare with a NUL: refused before any query is sent."""
    cli = Cli(pg_url)
    _seed(cli)
    _assert_clean_refusal(cli("list", "--search", "\x00"), ["--search", "NUL"])
    _assert_clean_refusal(cli("show", "\x00"), ["REF", "NUL"])


# --------------------------------------------------------------------------- newer store


def _make_newer(url: str) -> None:
    engine = create_engine(normalize_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    finally:
        engine.dispose()


NEWER_LINE = "the store was created by a newer version of datamantri-alerts; upgrade the package"


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["db", "upgrade"],
        ["db", "current"],
        ["evaluate"],
        [
            "create",
            "--name",
            "n",
            "--type",
            "pipeline_failure",
            "--config",
            "pipeline_id=p1",
            "--channel",
            "email",
            "--email",
            "ops@example.com",
        ],
        ["status"],
        ["sync", "alerts.yaml"],
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_store_made_by_a_newer_release_is_refused(
    store_url: str, tmp_path: Path, args: list[str]
) -> None:
    cli = Cli(store_url)
    _seed(cli)
    (Path.cwd() / "alerts.yaml").write_text("pipelines:\n  - {id: p5, name: P5}\n")
    _make_newer(store_url)
    before = dump_store(store_url)
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"error: {NEWER_LINE}"
    assert result.stdout == "" and result.exception is None
    assert dump_store(store_url) == before
