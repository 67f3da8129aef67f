"""Parameter values that need no conversion do not pay for typer's pydantic adapters.

typer 0.29 converts every parameter's value through a pydantic `TypeAdapter` built on first use
(`typer._coercion.build_runtime_param`), so the first parameter any command parses imports
pydantic (≈ 0.1 s of every command's start-up), even when the value already is what the
annotation asks for: text for a `str` option, a count's or a default's `int`, a flag's `bool`,
or is as plain as `--concurrency 16`, digits for an `int`.
typer offers no public way around it: `parser=` builds an adapter too, and `click_type=` is gone
since 0.29; the last release without pydantic (0.28) predates the parameter model our help
(`cli.helptext`) is written against.

`skip_needless_coercion` gives each parameter a runtime coercion that returns such a value as
typer's adapter would (the same object; a list of the same strings for a `list[str]` option)
and hands every other value to typer's own adapter, built at that moment and kept on the
parameter: a value that does need converting or checking (`--repeat-interval +30`, a path, a
number outside its `min`/`max`, anything with a parser) is converted and refused exactly
as typer does.
`tests/cli/test_coercion.py` compares both on every annotation the CLI uses, and
`tests/cli/test_lazy_imports.py` checks that `alerts list` no longer imports pydantic.

It relies on typer's parameter keeping its runtime coercion in `_runtime_param` (typer 0.29);
with a typer that does not, nothing is changed and typer's own coercion runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, get_args, get_origin

try:
    from typer._coercion import RuntimeParam, build_runtime_param
except ImportError:  # pragma: no cover - another typer: its own coercion runs
    RuntimeParam = None  # type: ignore[assignment,misc]

#: Annotations whose value is returned as it is when it already has exactly this type.
PLAIN_TYPES = (str, int, float, bool)

#: Text that an `int` parameter converts here, as typer's adapter would (`--concurrency 16`):
#: plain ASCII decimal digits, no sign, space, underscore or leading zero. Any other text
#: (`+16`, ` 16`, `1_000`, `016`, `٣`) goes to typer's adapter, which converts or refuses it.
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]{0,17})", re.ASCII)


def _plain(annotation: Any, parameter_info: Any) -> bool:
    """Whether typer's adapter for annotation returns a value of that exact type unchanged
    (within its bounds, see `_within_bounds`): no parser, no file or path handling, no
    choices."""
    if getattr(parameter_info, "parser", None) is not None:
        return False
    if getattr(parameter_info, "path_type", None) is not None:
        return False
    return annotation in PLAIN_TYPES


def _within_bounds(value: Any, parameter_info: Any) -> bool:
    """Whether a number is within the parameter's `min`/`max` (typer's adapter returns such a
    value unchanged, clamped or not); True for a parameter without bounds."""
    low = getattr(parameter_info, "min", None)
    high = getattr(parameter_info, "max", None)
    if low is None and high is None:
        return True
    if type(value) not in (int, float):
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def _list_item_type(annotation: Any) -> Any | None:
    """T of `list[T]`, else None."""
    if get_origin(annotation) is list:
        args = get_args(annotation)
        if len(args) == 1:
            return args[0]
    return None


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class PlainRuntimeParam(RuntimeParam):
        """No value (None) as typer's `coerce` gives it; a value of the annotation's exact
        type (`item_type`: a list or tuple of such items) as it is; anything else through
        typer's own adapter, built on first need and kept on the parameter."""

        #: The type a value (or each item of a list value) must have to be returned as it is;
        #: None: every value goes to typer's adapter.
        plain_type: Any = None
        is_list: bool = False

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            plain = self.plain_type
            if plain is not None:
                if not self.is_list:
                    if type(value) is plain and _within_bounds(value, self.parameter_info):
                        return value
                    if (
                        plain is int
                        and type(value) is str
                        and _DECIMAL.fullmatch(value)
                        and _within_bounds(number := int(value), self.parameter_info)
                    ):
                        return number
                elif isinstance(value, list | tuple) and all(
                    type(v) is plain and _within_bounds(v, self.parameter_info) for v in value
                ):
                    return list(value)
            typer_own = build_runtime_param(param.type_descriptor)
            param._runtime_param = typer_own
            return typer_own._coerce_value(value, param=param, ctx=ctx)


def plain_runtime_param(param: Any) -> Any | None:
    """The coercion to give param, or None to leave typer's (not a typer 0.29 parameter, or a
    file parameter, which typer opens without pydantic)."""
    if RuntimeParam is None or not hasattr(param, "_runtime_param"):
        return None
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or descriptor.file_annotation is not None:
        return None
    annotation = descriptor.annotation
    info = descriptor.parameter_info
    item_type = _list_item_type(annotation)
    checked = annotation if item_type is None else item_type
    return PlainRuntimeParam(
        annotation=annotation,
        parameter_info=info,
        plain_type=checked if _plain(checked, info) else None,
        is_list=item_type is not None,
    )


def skip_needless_coercion(params: Iterable[Any]) -> None:
    """Give each of params whose coercion typer has not built yet a `PlainRuntimeParam`
    (where it applies). Idempotent; a coercion already built is kept."""
    for param in params:
        if getattr(param, "_runtime_param", True) is None:
            param._runtime_param = plain_runtime_param(param)
