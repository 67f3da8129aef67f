"""stop_on_signals: SIGTERM, SIGHUP and SIGINT raise Interrupted once; the cleanup runs."""

from __future__ import annotations

import os
import signal
import time

import pytest

from datamantri_alerts.interrupts import Interrupted, exit_code_for, stop_on_signals


def _deliver(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # the handler runs at the next bytecode boundary of the main thread


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]
)
def test_first_signal_raises_interrupted_later_ones_are_ignored(signum: int, code: int) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    cleaned_up = False
    with pytest.raises(Interrupted) as caught, stop_on_signals():
        try:
            _deliver(signum)
            pytest.fail("the signal did not interrupt")
        except Interrupted:
            _deliver(signal.SIGTERM)  # a second signal during the cleanup: ignored
            _deliver(signal.SIGINT)
            _deliver(signal.SIGHUP)
            cleaned_up = True
            raise
    assert cleaned_up
    assert caught.value.signum == signum
    assert caught.value.exit_code == code == exit_code_for(caught.value)
    assert str(caught.value) == f"interrupted by {signal.Signals(signum).name}"
    assert isinstance(caught.value, KeyboardInterrupt)  # Ctrl-C's cleanup paths apply
    assert {s: signal.getsignal(s) for s in before} == before  # handlers restored


def test_plain_keyboard_interrupt_exits_130() -> None:
    assert exit_code_for(KeyboardInterrupt()) == 130
