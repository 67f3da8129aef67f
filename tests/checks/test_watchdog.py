"""The one watchdog thread of a run (`checks.watchdog`): alarms go off once, on time, apart."""

from __future__ import annotations

import threading
import time

import pytest

from datamantri_alerts.checks.watchdog import Watchdog

#: Serial (scripts/test.sh runs it alone): alarms are checked against their delays on the
#: real clock.
pytestmark = pytest.mark.serial


def _watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "test-watchdog"]


def test_an_alarm_goes_off_once_after_its_delay() -> None:
    dog = Watchdog("test-watchdog")
    went_off = threading.Event()
    calls: list[float] = []
    started = time.monotonic()

    def action() -> None:
        calls.append(time.monotonic() - started)
        went_off.set()

    alarm = dog.schedule(0.2, action)
    assert went_off.wait(10)
    time.sleep(0.1)
    assert len(calls) == 1
    assert calls[0] >= 0.2
    assert alarm.went_off
    assert alarm.cancel() is False  # too late: it went off
    dog.stop()


def test_a_cancelled_alarm_never_goes_off() -> None:
    dog = Watchdog("test-watchdog")
    calls: list[str] = []
    alarm = dog.schedule(0.1, lambda: calls.append("cancelled one"))
    later = threading.Event()
    dog.schedule(0.3, later.set)
    assert alarm.cancel() is True
    assert later.wait(10)
    assert calls == []
    dog.stop()


def test_many_alarms_share_one_thread_and_keep_their_order() -> None:
    dog = Watchdog("test-watchdog")
    order: list[int] = []
    done = threading.Event()
    lock = threading.Lock()

    def note(i: int) -> None:
        with lock:
            order.append(i)
            if len(order) == 3:
                done.set()

    alarms = [dog.schedule(0.05 * (i + 1), lambda i=i: note(i)) for i in range(200)]
    for alarm in alarms[3:]:
        alarm.cancel()
    assert len(_watchdog_threads()) == 1
    assert done.wait(10)
    time.sleep(0.3)
    assert order == [0, 1, 2]
    dog.stop()


def test_a_slow_cancel_does_not_hold_up_the_next_alarm() -> None:
    """Cancelling can block (a PostgreSQL cancel request, a MySQL KILL connection): an action
    runs in a thread of its own, so the next alarm still goes off on time."""
    dog = Watchdog("test-watchdog")
    release = threading.Event()
    second = threading.Event()
    dog.schedule(0.05, lambda: release.wait(10))  # blocks until the end of the test
    started = time.monotonic()
    dog.schedule(0.2, second.set)
    assert second.wait(5)
    assert time.monotonic() - started < 3
    release.set()
    dog.stop()


def test_stop_lets_armed_alarms_go_off_and_then_ends_the_thread() -> None:
    dog = Watchdog("test-watchdog")
    went_off = threading.Event()
    dog.schedule(0.2, went_off.set)
    dog.schedule(30, lambda: None).cancel()  # a cancelled one does not keep the thread up
    dog.stop()
    assert went_off.wait(5)
    deadline = time.monotonic() + 5
    while _watchdog_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _watchdog_threads() == []
    # Scheduling again starts a new thread.
    again = threading.Event()
    dog.schedule(0.01, again.set)
    assert again.wait(5)
    dog.stop()
