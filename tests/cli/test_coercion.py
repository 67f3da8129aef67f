"""`cli.coercion`: a parameter value that needs no conversion is returned as typer's own adapter
returns it, and every other value is converted (or refused) by typer's adapter itself.

Checked on every parameter of every command (the annotations the CLI really uses), against
typer's `build_runtime_param` for the same parameter, in the same context.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param
from typer.main import get_command

from datamantri_alerts.cli import app
from datamantri_alerts.cli.coercion import PlainRuntimeParam, plain_runtime_param


def _walk(command: Any) -> Iterator[tuple[Any, Any]]:
    for param in command.params:
        yield command, param
    for sub in getattr(command, "commands", {}).values():
        yield from _walk(sub)


ROOT = get_command(app)
PARAMS = [
    pytest.param(command, param, id=f"{command.name}-{param.name}")
    for command, param in _walk(ROOT)
]

#: Values a parameter receives from the parser or as its default: text, counts, flags, lists.
SAMPLES: list[Any] = [
    None,
    "",
    "text",
    " padded ",
    "12",
    "16",
    "512",
    "513",
    "1000",
    "1001",
    "012",
    "+12",
    " 12",
    "1_000",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: a digit to str.isdigit, not to us
    "99999999999999999999",
    "-3",
    "1.5",
    "1e3",
    "nan",
    "0",
    "true",
    "no",
    "\udcff",  # undecodable byte from the command line (surrogateescape)
    "a\x00b",
    0,
    1,
    5,
    10,
    -1,
    2**40,
    10_000_000,
    0.05,
    0.5,
    30.0,
    1000.0,
    True,
    False,
    (),
    ("a", "b"),
    ["x"],
    ("1", "2"),
    (1, 2),
    ("a", 1),
    Path("alerts.yaml"),
]


def _outcome(runtime: Any, value: Any, param: Any, ctx: Any) -> tuple[str, Any]:
    try:
        result = runtime.coerce(value, param=param, ctx=ctx)
    except BadParameter as exc:
        return "refused", exc.format_message()
    except Exception as exc:  # what typer's adapter lets through, it must let through here
        return "raised", (type(exc).__name__, str(exc))
    return "value", (type(result), result)


def _compare(command: Any, param: Any, value: Any) -> None:
    ctx = typer.Context(command)
    ours = plain_runtime_param(param)
    assert isinstance(ours, PlainRuntimeParam), param.name
    typers = build_runtime_param(param.type_descriptor)
    saved = param._runtime_param
    try:
        expected = _outcome(typers, value, param, ctx)
        got = _outcome(ours, value, param, ctx)
    finally:
        param._runtime_param = saved
    assert got == expected, (param.name, param.type_descriptor.annotation, value)


@pytest.mark.parametrize(("command", "param"), PARAMS)
def test_every_parameter_coerces_as_typer_does(command: Any, param: Any) -> None:
    for value in SAMPLES:
        _compare(command, param, value)


TEXT_PARAMS = [
    (command, param)
    for command, param in _walk(ROOT)
    if param.type_descriptor.annotation in (str, list[str])
]


@settings(max_examples=200, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=len(TEXT_PARAMS) - 1),
    value=st.one_of(st.text(), st.lists(st.text(), max_size=3).map(tuple)),
)
def test_any_text_is_coerced_as_typer_does(index: int, value: Any) -> None:
    command, param = TEXT_PARAMS[index]
    _compare(command, param, value)


@settings(max_examples=200, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=len(PARAMS) - 1),
    value=st.one_of(
        st.integers(min_value=-(2**31), max_value=2**31),
        st.floats(allow_nan=True),
        st.text(alphabet="0123456789.-+e _", max_size=8),
        st.from_regex(r"\A[0-9]{1,6}\Z"),
    ),
)
def test_any_number_is_coerced_as_typer_does(index: int, value: Any) -> None:
    command, param = PARAMS[index].values
    _compare(command, param, value)


def test_values_needing_conversion_go_through_typers_adapter() -> None:
    status = ROOT.commands["status"]  # type: ignore[attr-defined]
    limit = next(p for p in status.params if p.name == "limit")
    ctx = typer.Context(status)
    limit._runtime_param = plain_runtime_param(limit)
    try:
        assert limit.process_value(ctx, 10) == 10  # the default: as it is
        assert isinstance(limit._runtime_param, PlainRuntimeParam)
        assert limit.process_value(ctx, "25") == 25  # plain digits: converted here
        assert isinstance(limit._runtime_param, PlainRuntimeParam)
        assert limit.process_value(ctx, "+25") == 25  # a sign: typer's adapter converts it
        assert not isinstance(limit._runtime_param, PlainRuntimeParam)  # typer's, kept
        with pytest.raises(BadParameter):
            limit.process_value(ctx, "0")  # below its min=1: refused by typer
    finally:
        limit._runtime_param = None


def test_the_cli_refuses_a_bad_number_as_typer_does(cli: Any) -> None:
    result = cli("status", "--limit", "lots")
    assert result.exit_code == 2
    assert "--limit" in result.stderr and "valid integer" in result.stderr
    result = cli("status", "--limit", "5000")
    assert result.exit_code == 2
    assert "--limit" in result.stderr and "1000" in result.stderr


def test_evaluate_with_a_concurrency_builds_no_adapter(tmp_path: Path) -> None:
    """`alerts evaluate --concurrency 16` (the cron line of the README) parses its number
    without typer's pydantic adapters (`typer._adapters`, ≈ 0.1 s of every run's start-up:
    the module and the TypeAdapter it builds; the checks' own configs still use pydantic)."""
    import json
    import os
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "from datamantri_alerts.cli import app\n"
        "try:\n"
        "    app(sys.argv[1:], prog_name='alerts')\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stderr.write('\\nMODULES=' + json.dumps(sorted(sys.modules)) + '\\n')\n"
    )
    store = f"sqlite:///{tmp_path / 'store.db'}"
    done = subprocess.run(
        [sys.executable, "-c", script, "--db", store, "evaluate", "--concurrency", "16"],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=60,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES="))
    modules = set(json.loads(line.removeprefix("MODULES=")))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "typer._adapters" not in modules
