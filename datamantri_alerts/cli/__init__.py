"""The `alerts` command line: a thin Typer layer over the services."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from datamantri_alerts import __version__
from datamantri_alerts.cli.input_text import CheckedContext, use_checked_context
from datamantri_alerts.errors import AlertsError


class AlertsGroup(TyperGroup):
    """Turns our own errors into one clean line and the exit code SPEC.md gives; gives every
    parameter a readable value name (`cli.helptext`).

    Every invocation runs with sys.stdout and sys.stderr behind the redactor (`logs`), and
    starts with an empty secret registry (tests run many invocations in one process).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from datamantri_alerts.cli.helptext import readable_params

        readable_params(self, showing_help=False)

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        from datamantri_alerts.logs import redacted_output
        from datamantri_alerts.secrets import forget_secrets

        forget_secrets()
        with redacted_output():
            return super().main(*args, **kwargs)

    context_class = CheckedContext

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except AlertsError as exc:
            _print_error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except KeyboardInterrupt:
            raise
        except BrokenPipeError:
            _stop_writing_to_closed_pipe()
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except Exception as exc:
            from datamantri_alerts.secrets import redact_text

            verbose = int(ctx.meta.get("alerts.verbose") or 0)
            if verbose:
                # -v and -vv: the traceback, through the logging filter's redaction.
                logging.getLogger("datamantri_alerts").error("unexpected error", exc_info=exc)
            _print_error(redact_text(_error_line(exc)))
            raise typer.Exit(1) from None

    def resolve_command(self, ctx: typer.Context, args: list[str]) -> Any:  # type: ignore[override]
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            from datamantri_alerts.cli.helptext import readable_params

            readable_params(command, showing_help=any(a in ("--help", "-h") for a in rest))
            use_checked_context(command)  # option values are checked before any command runs
        return name, command, rest


#: The reader of our output went away (`alerts list | head`): exit as a process killed by
#: SIGPIPE would (128 + 13), silently, like other command-line tools.
EXIT_BROKEN_PIPE = 141


def _stop_writing_to_closed_pipe() -> None:
    """Point stdout at /dev/null, so flushing what is still buffered at exit cannot fail again
    (https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    import os
    import sys

    stdout = sys.__stdout__
    if stdout is None:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _error_line(exc: Exception) -> str:
    """The one line shown for an unexpected exception (the caller redacts it)."""
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    if isinstance(exc, OperationalError):
        text = str(exc.orig) if exc.orig else str(exc)
        return f"the store is unreachable: {_first_line(text)}"
    if isinstance(exc, SQLAlchemyError):
        return f"store error: {_first_line(str(exc))}"
    name = type(exc).__name__
    return f"internal error: {name}: {_first_line(str(exc))} (run with -v for details)"


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def _print_error(message: str) -> None:
    """One line, always: control characters from user input are shown escaped."""
    one_line = "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode()
        for ch in message
    )
    typer.echo(f"error: {one_line}", err=True)


app = typer.Typer(
    name="alerts",
    cls=AlertsGroup,
    help="Alert manager for data platforms: define alerts, evaluate them from cron, notify.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"datamantri-alerts {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    db: str | None = typer.Option(
        None,
        "--db",
        metavar="URL",
        help="Store URL (SQLAlchemy). Default: $ALERTS_DATABASE_URL, else a SQLite file "
        "in $XDG_DATA_HOME/datamantri-alerts/.",
        show_default=False,
    ),
    env_file: Path | None = typer.Option(
        None,
        "--env-file",
        metavar="FILE",
        help="Read settings from this file (default: ./.env when present).",
    ),
    verbose: int = typer.Option(0, "-v", "--verbose", count=True, help="More logging (-vv)."),
    log_file: str | None = typer.Option(
        None,
        "--log-file",
        metavar="PATH",
        help="Also log to this file (info and up; -vv debug), reopened when logrotate moves it. "
        "Default: $ALERTS_LOG_FILE.",
        show_default=False,
    ),
    log_format: str | None = typer.Option(
        None,
        "--log-format",
        metavar="text|json",
        help="Log lines as text (default) or one JSON object each. Default: $ALERTS_LOG_FORMAT.",
        show_default=False,
    ),
    hostname: str | None = typer.Option(
        None,
        "--hostname",
        metavar="NAME",
        help="The host id this evaluator reports and leases under. Default: $ALERTS_HOSTNAME, "
        "else the host name.",
        show_default=False,
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    from datamantri_alerts.cli.context import AppContext
    from datamantri_alerts.secrets import register_url
    from datamantri_alerts.settings import build_settings

    settings = build_settings(db=db, env_file=env_file, verbose=verbose, hostname=hostname)
    register_url(settings.database_url)
    _configure_logging(verbose, log_file, log_format)
    ctx.meta["alerts.verbose"] = verbose
    obj = AppContext(settings=settings)
    ctx.obj = obj
    ctx.call_on_close(obj.close)


def _configure_logging(verbose: int, log_file: str | None, log_format: str | None) -> None:
    """Logging from the options, else ALERTS_LOG_FILE / ALERTS_LOG_FORMAT (after .env)."""
    import os

    from datamantri_alerts.errors import InputError
    from datamantri_alerts.logs import LOG_FORMATS, configure_logging

    path = log_file or os.environ.get("ALERTS_LOG_FILE", "").strip() or None
    chosen = (log_format or os.environ.get("ALERTS_LOG_FORMAT", "").strip() or "text").lower()
    field = "--log-format" if log_format else "ALERTS_LOG_FORMAT"
    if chosen not in LOG_FORMATS:
        raise InputError(f"must be one of {', '.join(LOG_FORMATS)}, got {chosen!r}", field=field)
    try:
        configure_logging(verbose, log_file=path, log_format=chosen)
    except OSError as exc:
        field = "--log-file" if log_file else "ALERTS_LOG_FILE"
        raise InputError(f"cannot open {path}: {exc.strerror or exc}", field=field) from None


def _register() -> None:
    from datamantri_alerts.cli import alerts as alert_commands
    from datamantri_alerts.cli import db, entities, sync

    for name, func in alert_commands.COMMANDS.items():
        app.command(name)(func)
    app.command("sync")(sync.sync)
    app.command("export")(sync.export)
    for name, sub in entities.GROUPS.items():
        app.add_typer(sub, name=name)
    app.add_typer(db.app, name="db")
    _register_optional()


def _register_optional() -> None:
    """Command modules that arrive with later work; each registers itself when present."""
    import importlib

    for module_name, attr, name, kind in (
        ("runs", "app", "runs", "group"),
        ("evaluate", "evaluate", "evaluate", "command"),
        ("test_cmd", "test", "test", "command"),
        ("history", "app", "history", "group"),
        ("status", "status", "status", "command"),
        ("mute", "mute", "mute", "command"),
        ("mute", "unmute", "unmute", "command"),
        ("ack", "ack", "ack", "command"),
        ("ack", "unack", "unack", "command"),
        ("secrets_cmd", "app", "secrets", "group"),
        ("types_cmd", "types", "types", "command"),
        ("render", "render", "render", "command"),
        ("validate", "validate", "validate", "command"),
        ("metrics", "metrics", "metrics", "command"),
        ("windows", "app", "windows", "group"),
        ("silences", "app", "silence", "group"),
        ("import_cmd", "app", "import", "group"),
    ):
        try:
            module = importlib.import_module(f"datamantri_alerts.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"datamantri_alerts.cli.{module_name}":
                raise
            continue
        target = getattr(module, attr, None)
        if target is None:
            continue
        if kind == "group":
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)


_register()


def main() -> None:
    """The `alerts` entry point: output redacted for the life of the process, so what Python
    prints after the command (an uncaught exception's traceback) is redacted too."""
    from datamantri_alerts.cli.startup import pause_gc, resume_gc, switching_less
    from datamantri_alerts.logs import install_redacted_output

    pause_gc()  # start-up's imports are not collected over and over (`cli.startup`)
    try:
        install_redacted_output()
        with switching_less():
            app(prog_name="alerts")
    finally:
        resume_gc()


def run() -> None:
    """The `alerts` command (console script and `python -m datamantri_alerts`): `main`, then the
    process ends at once with its exit status (`cli.startup.exit_at_once`: no interpreter
    teardown) when the command ended with one, and through Python's own exit otherwise (an
    uncaught exception's traceback, a message as the exit status, Ctrl-C)."""
    from datamantri_alerts.cli.startup import exit_at_once

    try:
        main()
    except SystemExit as exc:
        if exc.code is not None and not isinstance(exc.code, int):
            raise
        exit_at_once(exc.code or 0)
        raise
    exit_at_once(0)
