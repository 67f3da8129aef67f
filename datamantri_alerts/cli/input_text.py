"""Every text a command receives from its command line is checked before the command runs.

`CheckedContext` is the click context of every `alerts` command: before it calls a command's
function it refuses an option or argument value holding NUL or another control character
(tab and newline are allowed), naming the option, with the one-line `InputError` (exit 2). The
command a wrapper runs (a variadic argument such as `runs wrap ... -- COMMAND...`) is passed
through untouched. Values read from documents are checked by `inputs.check_document`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import typer

from datamantri_alerts.inputs import check_cli_text, control_character

V = TypeVar("V")


def _label(param: Any) -> str:
    """`--name` for an option, its metavar (`REF`, `FILE`) for an argument."""
    if param.param_type_name == "option" and param.opts:
        return str(max(param.opts, key=len))
    return str(getattr(param, "metavar", None) or (param.name or "").upper())


class CheckedContext(typer.Context):
    """A command's context that refuses control characters in its parameters' text.

    It also gives the command's parameters (its help option included) the coercion that
    returns values needing no conversion as they are (`cli.coercion`), before they are parsed.
    """

    def __init__(self, command: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(command, *args, **kwargs)
        from datamantri_alerts.cli.coercion import skip_needless_coercion

        skip_needless_coercion(command.get_params(self))

    def invoke(self, callback: Callable[..., V], /, *args: Any, **kwargs: Any) -> V:
        for param in self.command.params:
            if param.param_type_name == "argument" and param.nargs == -1:
                continue
            value = kwargs.get(param.name or "")
            values = value if isinstance(value, list | tuple) else [value]
            for item in values:
                if isinstance(item, str) and control_character(item) is not None:
                    check_cli_text(item, _label(param), multiline=True)
        return super().invoke(callback, *args, **kwargs)


def use_checked_context(command: Any) -> None:
    """Make command (and, for a group, every command under it) run in a CheckedContext."""
    command.context_class = CheckedContext
    for sub in getattr(command, "commands", {}).values():
        use_checked_context(sub)
