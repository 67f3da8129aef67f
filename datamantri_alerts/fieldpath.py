"""Field paths in one form everywhere: `alerts[3].recipients.email[1]`.

Every message about a field of a document (validation, references, sync plans, warnings) names
the field through `field_path`, so `alerts validate`, `create`, `edit` and `sync` print the same
path for the same place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PathPart = str | int


def field_path(*parts: PathPart | None) -> str:
    """Join keys and list indexes: ("alerts", 3, "recipients", "email", 1) ->
    `alerts[3].recipients.email[1]`.

    A part may itself be a path (it is kept as written); None and "" parts are skipped. Keys that
    are not identifiers are quoted (`condition_config.'odd key'`)."""
    out = ""
    for part in parts:
        if part is None or part == "":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = str(part)
        if not _is_path(text):
            text = repr(text)
        out = f"{out}.{text}" if out else text
    return out


def from_loc(loc: Iterable[PathPart], *prefix: PathPart | None) -> str:
    """A pydantic error location (`("recipients", "email", 1)`) as a field path after prefix."""
    return field_path(*prefix, *(p if isinstance(p, int) else _key(str(p)) for p in loc))


def key_path(key: object) -> str:
    """One mapping key as a path part: an empty key shows as `''`, not as nothing."""
    return _key(str(key))


def _key(text: str) -> str:
    return text if text else repr(text)


def _is_path(text: str) -> bool:
    """An identifier, a `$`-name, or a path this module already built (quoted keys included)."""
    return bool(_PATH.fullmatch(text))


_SEGMENT = r"(?:[^\W\d]\w*|\$[^.\[\]]*|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
_PATH = re.compile(rf"{_SEGMENT}(?:\[\d+\])*(?:\.{_SEGMENT}(?:\[\d+\])*)*")
