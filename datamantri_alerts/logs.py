"""Logging: warnings by default, more with -v; every record passes the secret redactor."""

from __future__ import annotations

import logging
import sys


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from datamantri_alerts.secrets import redact_text, secrets_from_env

        message = record.getMessage()
        cleaned = redact_text(message, secrets_from_env())
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


def configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logger = logging.getLogger("datamantri_alerts")
    logger.setLevel(level)
    if not any(getattr(h, "_alerts_handler", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactingFilter())
        handler._alerts_handler = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    for handler in logger.handlers:
        handler.setLevel(level)
