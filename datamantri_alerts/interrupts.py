"""Stopping cleanly: SIGTERM (systemd, Kubernetes, `kill`) and SIGHUP (the terminal or SSH
session closing) take the path Ctrl-C takes.

`stop_on_signals()` makes SIGINT, SIGTERM and SIGHUP raise `Interrupted` in the main thread, once: a
second signal during the cleanup is ignored, so the cleanup (cancel queries, release leases,
record the run) is not itself interrupted. `Interrupted` is a KeyboardInterrupt, so every
`except KeyboardInterrupt` / `except BaseException` cleanup already written for Ctrl-C runs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: The signals that stop a run: Ctrl-C, what service managers send, and the hang-up of the
#: terminal it runs in (whose default action would kill it with the run left `running`, its
#: leases held and its queries still running on the server).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop by signal `signum`; a shell's exit code is 128 + signum."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal_name(signum)}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_code_for(exc: KeyboardInterrupt) -> int:
    """128 + the signal number: 143 for SIGTERM, 129 for SIGHUP, 130 for Ctrl-C (a bare
    KeyboardInterrupt)."""
    return exc.exit_code if isinstance(exc, Interrupted) else 128 + signal.SIGINT


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """While inside, the first of `signals` raises Interrupted in the main thread; later ones
    are ignored. Outside the main thread (where handlers cannot be set) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            return
        stopping.set()
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
