"""Exceptions the service layer raises; the CLI maps them to exit codes."""

from __future__ import annotations


class AlertsError(Exception):
    """Base class of every error this package raises on purpose."""

    exit_code = 1


class InputError(AlertsError):
    """Invalid input: usage, validation, an unknown reference. Exit code 2, nothing written."""

    exit_code = 2

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)

    def under(self, *prefix: str | int | None) -> InputError:
        """The same problem with its field path placed under prefix (`alerts[3]` + `name`)."""
        from datamantri_alerts.fieldpath import field_path

        return type(self)(self.message, field=field_path(*prefix, self.field) or None)


def first_of(problems: list[InputError]) -> InputError:
    """The first problem, saying how many more there are: one line for the CLI to print."""
    first = problems[0]
    more = len(problems) - 1
    if not more:
        return first
    plural = "s" if more > 1 else ""
    return InputError(f"{first.message} (and {more} more problem{plural})", field=first.field)


class NotFoundError(InputError):
    """A REF or id that names nothing in the store."""


class RuntimeFailure(AlertsError):
    """A runtime failure: a check errored, a delivery failed, the store is unreachable."""

    exit_code = 1


class ConflictError(AlertsError):
    """A save refused because someone else changed the same record since it was read.
    Exit code 1: nothing was written, and trying again after a fresh read may succeed."""

    exit_code = 1
