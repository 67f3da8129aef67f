"""A command's start-up runs without the cyclic garbage collector.

Start-up imports typer, SQLAlchemy and the store's models (and for `evaluate` pydantic, psycopg
and the services): hundreds of thousands of objects that live until the process exits. CPython's
collector traverses the survivors again and again while they accumulate (its oldest generation
whenever they have grown by a quarter), which reclaims next to nothing and cost ≈ 10-15 % of
`alerts list`'s CPU, plus one more pass over everything when the interpreter exits.

`main` pauses the collector (`pause_gc`). When the command opens the store, its imports are done:
`resume_gc` moves every object alive then to the permanent generation (`gc.freeze`), which later
collections skip, and turns collection back on for the work that follows (an evaluator run, a
delivery), with the young generation collected every `YOUNG_THRESHOLD` allocations instead of
CPython's 700. An evaluator run allocates rows, dicts and results by the hundred thousand,
nearly all freed by reference counting; at 700 the collector ran about 280 times in a
5,000-alert run (60-120 ms, 4-8 % of its CPU, most of it traversing the middle generation again
and again), at 20,000 four times (15-20 ms). Cyclic garbage is still collected, only later: a
bounded delay in memory. A command that never opens the store is short; `main` resumes on the
way out.
Only a pause made here is resumed here, so a caller that runs the CLI in-process with the
collector in its own hands (the tests, through `app`) is left alone.

`main` also lengthens the interpreter's switch interval to `SWITCH_INTERVAL` (20 ms, CPython's
is 5 ms) for the command (`switching_less`): an evaluator run has two threads that want the CPU
for long stretches, the claimer and the result writer, beside check threads that mostly wait
on I/O. Every 5 ms the busy one was made to hand the GIL over, and the two took turns through
each other's caches: 3-5 % of a 5,000-alert run's wall time (16 interleaved rounds). A thread
that blocks on I/O still lets go of the GIL at once; one whose answer has come back waits at
most 20 ms for it, which neither a check's timeout (seconds) nor the run notices.

When the command is over, the `alerts` command ends the process without the interpreter's
teardown (`exit_at_once`, as mypy's `hard_exit` does): tearing down every module and freeing
every object one by one took 60-160 ms after a 5,000-alert run, 4-8 % of it, for a process
that is about to be gone. Everything a normal exit does that anyone could see is still done
first, and where it cannot be done the same way the normal exit runs instead.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Net allocations of container objects between two collections of the young generation once
#: start-up is over (CPython's default: 700); the older generations keep their thresholds.
YOUNG_THRESHOLD = 20_000

#: The interpreter's switch interval while a command runs (seconds; CPython's default 0.005).
SWITCH_INTERVAL = 0.02

_paused = False


def pause_gc() -> None:
    """Turn the collector off for start-up (when it is on)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_gc() -> None:
    """Start-up is over: what is alive now is kept out of later collections (`gc.freeze`) and
    collection is turned back on, the young generation every `YOUNG_THRESHOLD` allocations.
    Nothing happens unless `pause_gc` turned it off."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        _, middle, oldest = gc.get_threshold()
        gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
        gc.enable()


@contextmanager
def switching_less() -> Iterator[None]:
    """Run the block with a switch interval of at least `SWITCH_INTERVAL`; the previous one
    is back afterwards."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(max(previous, SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def exit_at_once(code: int) -> None:
    """End the process now with exit status `code`, skipping the interpreter's teardown.

    What a normal exit does that is seen outside the process is done first: standard output and
    error are flushed (the redactor's pending text too) and the `atexit` functions run (logging's
    `shutdown`, which flushes and closes the log handlers, among them). Returns without doing
    anything, so the caller exits normally, when another non-daemon thread is still alive (a
    normal exit waits for it), when flushing fails (a normal exit reports that, e.g. a closed
    pipe, and exits with 120) or when `code` is beyond a C int."""
    if not -(2**31) <= code < 2**31:
        return  # beyond a C int: Python's exit reduces it as the platform does
    main = threading.main_thread()
    if any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return
    if not _flushed():
        return
    atexit._run_exitfuncs()  # the registry is cleared: a normal exit after this runs none twice
    if not _flushed():
        return
    os._exit(code)


def _flushed() -> bool:
    try:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            if stream is not None:
                stream.flush()
    except Exception:
        return False
    return True
