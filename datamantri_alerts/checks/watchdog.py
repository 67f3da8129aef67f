"""One watchdog thread for every statement bound of a run.

`Watchdog.schedule(delay, action)` arranges for `action()` to be called once `delay` seconds
(monotonic) have passed, unless the returned `Alarm` is cancelled first. A single daemon thread
waits on a heap of deadlines, so bounding a statement costs a heap push and a pop, not a thread
(`threading.Timer` starts one per call). An alarm that goes off runs its action in a short-lived
daemon thread of its own: cancelling a statement can block (PostgreSQL's cancel request, MySQL's
`KILL QUERY` connection), and one slow cancel must not hold up the others.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Alarm:
    """A scheduled action; `cancel()` before it goes off and it never runs."""

    __slots__ = ("_action", "_lock", "_went_off", "deadline")

    def __init__(self, deadline: float, action: Callable[[], None], lock: threading.Lock) -> None:
        self.deadline = deadline  # time.monotonic() value
        self._action: Callable[[], None] | None = action
        self._lock = lock  # the watchdog's, shared by its alarms (held for a few operations)
        self._went_off = False

    def cancel(self) -> bool:
        """Stop the alarm; False when it has already gone off (its action runs or ran)."""
        with self._lock:
            if self._went_off:
                return False
            self._action = None
            return True

    @property
    def went_off(self) -> bool:
        """Whether the alarm went off (its action was started)."""
        return self._went_off

    @property
    def armed(self) -> bool:
        """Whether the alarm will still go off."""
        return self._action is not None

    def _take(self) -> Callable[[], None] | None:
        """The action to run now (None if cancelled); marks the alarm as gone off."""
        with self._lock:
            action, self._action = self._action, None
            if action is not None:
                self._went_off = True
            return action


class Watchdog:
    """A heap of alarms served by one daemon thread, started on first use, ended by `stop()`
    once the alarms still armed have gone off."""

    def __init__(self, name: str = "statement-watchdog") -> None:
        self._name = name
        self._heap: list[tuple[float, int, Alarm]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._alarm_lock = threading.Lock()

    def schedule(self, delay: float, action: Callable[[], None]) -> Alarm:
        """Call `action()` in `delay` seconds unless the alarm is cancelled first."""
        alarm = Alarm(time.monotonic() + max(0.0, delay), action, self._alarm_lock)
        with self._changed:
            heapq.heappush(self._heap, (alarm.deadline, next(self._order), alarm))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()
            elif self._heap[0][2] is alarm:
                self._changed.notify()  # an earlier deadline than the one being waited for
        return alarm

    def stop(self) -> None:
        """Let the thread end once no armed alarm is left (cancelled ones are dropped now);
        alarms still armed go off as scheduled. `schedule` after `stop` starts it again."""
        with self._changed:
            self._stopping = True
            self._heap = [entry for entry in self._heap if entry[2].armed]
            heapq.heapify(self._heap)
            self._changed.notify()

    def _serve(self) -> None:
        while True:
            with self._changed:
                while True:
                    if not self._heap:
                        if self._stopping:
                            self._thread = None
                            self._stopping = False
                            return
                        self._changed.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        break
                    self._changed.wait(wait)
                _, _, alarm = heapq.heappop(self._heap)
            action = alarm._take()
            if action is not None:
                threading.Thread(target=action, name=f"{self._name}-cancel", daemon=True).start()
