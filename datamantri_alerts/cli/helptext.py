"""Readable help for every command: value names instead of Python types, live type lists.

Typer names an option's value after its Python annotation (`--config <list[str]>`,
`ref <str>`). `readable_params` gives every parameter that names no metavar of its own a
word for its value (`TEXT`, `INTEGER`, `PATH`, the argument's name), once, for every command
and subcommand, so no command can forget it. Help texts may hold `{types}`, replaced by the
alert types the registry knows (plugins included) when help is shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

#: Value names by annotation, for options that give no metavar of their own.
VALUE_NAMES: dict[Any, str] = {str: "TEXT", int: "INTEGER", float: "NUMBER", Path: "PATH"}
TYPES_PLACEHOLDER = "{types}"


def _value_name(annotation: Any) -> str:
    if get_origin(annotation) is list:
        (annotation,) = get_args(annotation)
    args = [a for a in get_args(annotation) if a is not type(None)]
    if args and get_origin(annotation) is not None and len(args) == 1:
        annotation = args[0]
    return VALUE_NAMES.get(annotation, "VALUE")


def readable_params(command: Any, *, showing_help: bool) -> None:
    """Give command's parameters (and its subcommands', recursively) readable value names;
    fill `{types}` in help texts when help is being shown. Idempotent and cheap (a walk over
    the parameters), so it runs on every invocation rather than caching anything."""
    for param in getattr(command, "params", []):
        descriptor = getattr(param, "type_descriptor", None)
        if param.param_type_name == "argument":
            if param.metavar is None:
                param.metavar = (param.name or "value").upper()
            # The argument's metavar already says what it is; no `<str>` after it.
            param.display_type_rich = lambda ctx: None
        elif (
            not getattr(param, "is_flag", False)
            and not getattr(param, "count", False)
            and param.metavar is None
            and descriptor is not None
        ):
            param.metavar = _value_name(descriptor.annotation)
        if showing_help and param.help and TYPES_PLACEHOLDER in param.help:
            from datamantri_alerts.checks import check_types

            param.help = param.help.replace(TYPES_PLACEHOLDER, ", ".join(check_types()))
    for sub in getattr(command, "commands", {}).values():
        readable_params(sub, showing_help=showing_help)
