"""Editing a record in $VISUAL / $EDITOR, the way `kubectl edit` does.

`edit_in_editor` is the one loop every `edit` command uses: it opens the editor on the text,
hands what was saved to a `save` function, and when `save` refuses it (InputError) reopens the
editor on the text as saved with the errors as `#` comments at the top. No store transaction
is open while the editor is: `save` opens its own, short one and checks that nobody changed
the record meanwhile (`services.edits`).

Nothing typed is lost: when the user gives up after changing something (exits the editor
without further changes, empties the file, or the editor fails) or someone else changed the
record meanwhile, the edit is kept in a private temporary file and the error says where.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from datamantri_alerts.errors import ConflictError, InputError

T = TypeVar("T")

INSTRUCTIONS = (
    "# Edit {what} below and save; lines starting with '#' at the top are ignored.\n"
    "# <redacted> keeps a stored secret. An empty file, or saving without changes, cancels.\n"
    "# If the saved text is not valid, this file is reopened with the errors here.\n"
)


def editor_command() -> list[str]:
    """$VISUAL, else $EDITOR, else vi, as argv; InputError (exit 2) when it does not exist."""
    raw = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        argv = shlex.split(raw)
    except ValueError as exc:
        raise InputError(f"cannot parse {raw!r}: {exc}", field="$EDITOR") from None
    if not argv or shutil.which(argv[0]) is None:
        raise InputError(
            f"editor {raw!r} not found; set $EDITOR (or $VISUAL) to an installed editor",
            field="$EDITOR",
        )
    return argv


def _header(what: str, errors: list[str]) -> str:
    text = INSTRUCTIONS.format(what=what)
    if errors:
        text += "#\n# The last save was not valid and nothing was written:\n"
        for error in errors:
            for line in error.splitlines() or [""]:
                text += f"#   {line}\n"
    return text + "#\n"


def strip_header(text: str) -> str:
    """text without its leading `#` lines (the instructions and errors this loop wrote)."""
    lines = text.splitlines(keepends=True)
    start = 0
    while start < len(lines) and lines[start].lstrip().startswith("#"):
        start += 1
    return "".join(lines[start:])


def keep_copy(text: str) -> Path:
    """text saved in a new private (0600) temporary file that is not deleted; its path."""
    fd, name = tempfile.mkstemp(prefix="alerts-edit-", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(name)


def edit_in_editor(text: str, save: Callable[[str], T], *, what: str) -> T | None:
    """Let the user edit text until `save(edited)` accepts it; returns what save returned, or
    None when the user cancelled without changing anything.

    save raises InputError for text it refuses (the editor reopens with the message) and
    ConflictError when the record changed meanwhile (the edit is kept; not reopened).
    Raises InputError when the editor is missing or the user gives up after changing
    something (the message says which file keeps the edit)."""
    argv = editor_command()
    fd, name = tempfile.mkstemp(prefix="alerts-edit-", suffix=".yaml")
    os.close(fd)
    path = Path(name)
    current = text
    errors: list[str] = []

    def give_up(reason: str) -> InputError:
        if current == text:
            return InputError(reason, field="edit")
        kept = keep_copy(current)
        last = f" (last error: {errors[-1]})" if errors else ""
        return InputError(f"{reason}{last}; nothing saved, your edit is kept in {kept}", "edit")

    try:
        while True:
            shown = _header(what, errors) + current
            path.write_text(shown, encoding="utf-8")
            try:
                returncode = subprocess.run([*argv, str(path)], check=False).returncode
            except OSError as exc:
                raise give_up(f"cannot run editor {argv[0]!r}: {exc.strerror}") from None
            saved = path.read_text(encoding="utf-8")
            if returncode != 0:
                body = strip_header(saved)
                current = body if body.strip() else current
                raise give_up(f"editor {argv[0]!r} exited with code {returncode}")
            body = strip_header(saved)
            if not body.strip():
                if current == text:
                    return None
                raise give_up("the file was emptied")
            if body == current:
                if not errors:
                    return None
                raise give_up("saved without changes after an error")
            current = body
            try:
                return save(body)
            except InputError as exc:
                errors = [str(exc)]
            except ConflictError as exc:
                kept = keep_copy(current)
                raise ConflictError(f"{exc}; your edit is kept in {kept}") from None
    finally:
        path.unlink(missing_ok=True)
