"""The evaluator's result writer (services/result_writer.py): batches written on a thread of
their own, in order; a failed write stops it and is raised in the caller; an interrupted run
writes nothing after the batch being written."""

from __future__ import annotations

import threading
import time

import pytest

from datamantri_alerts.services.result_writer import ResultWriter


def test_batches_are_written_in_order_off_the_callers_thread() -> None:
    written: list[tuple[int, str]] = []

    def write(batch: int) -> None:
        written.append((batch, threading.current_thread().name))

    with ResultWriter(write) as writer:
        for batch in range(50):
            writer.put(batch)
    # Leaving the block waited for every batch.
    assert [b for b, _ in written] == list(range(50))
    assert {name for _, name in written} == {"result-writer"}


@pytest.mark.serial  # threads synchronised by sleeps
def test_a_failed_write_stops_the_writer_and_is_raised_in_the_caller() -> None:
    written: list[int] = []
    failed = threading.Event()

    def write(batch: int) -> None:
        if batch == 1:
            failed.set()
            raise RuntimeError("the store went away")
        written.append(batch)

    writer = ResultWriter(write)
    writer.put(0)
    writer.put(1)
    assert failed.wait(5)
    with pytest.raises(RuntimeError, match="the store went away"):
        for batch in range(2, 100):  # raised at the next put once the failure is known
            writer.put(batch)
            time.sleep(0.01)
    with pytest.raises(RuntimeError, match="the store went away"):
        writer.close()
    assert written == [0]


def test_an_interrupted_run_writes_nothing_after_the_batch_being_written() -> None:
    started, release = threading.Event(), threading.Event()
    written: list[int] = []

    def write(batch: int) -> None:
        if batch == 0:
            started.set()
            assert release.wait(5)
        written.append(batch)

    with pytest.raises(KeyboardInterrupt), ResultWriter(write) as writer:
        writer.put(0)
        writer.put(1)
        writer.put(2)
        assert started.wait(5)
        threading.Timer(0.2, release.set).start()
        raise KeyboardInterrupt
    # The batch being written was finished (its transaction is whole); the queued ones were
    # not written: their leases are released by the run and the next run checks them again.
    assert written == [0]


@pytest.mark.serial  # threads synchronised by sleeps
def test_a_run_interrupted_while_waiting_for_its_last_writes_writes_no_more() -> None:
    """Ctrl-C or SIGTERM (`interrupts.stop_on_signals`) most often arrives while the run waits
    at the end of the `with` block for the batches still queued: those are not written either,
    and the writer is done when the interrupt goes on (the run then releases its leases and
    records itself as interrupted; a write after that would race with both)."""
    import signal

    main = threading.main_thread().ident
    assert main is not None
    written: list[int] = []
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def write(batch: int) -> None:
        if batch == 0:
            time.sleep(0.3)  # the main thread is waiting in close() by now
            signal.pthread_kill(main, signal.SIGINT)
            time.sleep(0.3)
        written.append(batch)

    try:
        with pytest.raises(KeyboardInterrupt), ResultWriter(write) as writer:
            for batch in range(3):
                writer.put(batch)
        assert written == [0]
        time.sleep(0.5)  # nothing is written later on either
        assert written == [0]
    finally:
        signal.signal(signal.SIGINT, previous)


class HeldFirstWrite:
    """A `write` for merged batches (lists) that holds batch `[0]` until `release` is set, so
    the batches put meanwhile queue up behind it; a batch holding `refused` fails."""

    def __init__(self, refused: int | None = None) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.written: list[list[int]] = []
        self.refused = refused

    def __call__(self, batch: list[int]) -> None:
        if batch == [0]:
            self.started.set()
            assert self.release.wait(5)
        if self.refused is not None and self.refused in batch:
            raise RuntimeError(f"the store refused result {self.refused}")
        self.written.append(batch)


def concatenated(batches: list[list[int]]) -> list[int]:
    return [item for batch in batches for item in batch]


def test_batches_queued_behind_a_write_are_written_together_up_to_the_limit() -> None:
    """A run whose checks end faster than their results are written pays one transaction per
    queue of batches (`merge_limit` items at most), not one per batch; in order, and the end
    of the queue among them ends the writer once they are written."""
    write = HeldFirstWrite()
    with ResultWriter(write, merge=concatenated, merge_limit=3) as writer:
        writer.put([0])
        assert write.started.wait(5)
        for batch in range(1, 6):  # queued while batch 0 is being written
            writer.put([batch])
        write.release.set()
    assert write.written == [[0], [1, 2, 3], [4, 5]]


def _release_when_stopping(writer: ResultWriter[list[int]], release: threading.Event) -> None:
    deadline = time.monotonic() + 30
    while not writer._stopping and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()


def test_an_interrupted_run_writes_no_queued_batch_merged_or_not() -> None:
    write = HeldFirstWrite()
    with (
        pytest.raises(KeyboardInterrupt),
        ResultWriter(write, merge=concatenated, merge_limit=100) as writer,
    ):
        writer.put([0])
        assert write.started.wait(5)
        writer.put([1])
        writer.put([2])
        # Batch 0's write ends only once the writer was told to stop, however slow the machine.
        threading.Thread(target=_release_when_stopping, args=(writer, write.release)).start()
        raise KeyboardInterrupt
    assert write.written == [[0]]


def test_a_merge_that_fails_writes_each_batch_alone() -> None:
    write = HeldFirstWrite()

    def merge(batches: list[list[int]]) -> list[int]:
        raise MemoryError("merging failed")

    with ResultWriter(write, merge=merge, merge_limit=100) as writer:
        writer.put([0])
        assert write.started.wait(5)
        writer.put([1])
        writer.put([2])
        write.release.set()
    assert write.written == [[0], [1], [2]]


def test_a_failed_merged_write_keeps_the_batches_before_the_bad_one() -> None:
    """One call is one transaction, so a merged write that fails kept nothing: its batches are
    written again one at a time, and the failure stops the batch it is in and the later ones,
    as without merging (review of the merge: a bad result took 499 good ones down with it)."""
    write = HeldFirstWrite(refused=3)
    with (
        pytest.raises(RuntimeError, match="result 3"),
        ResultWriter(write, merge=concatenated, merge_limit=100) as writer,
    ):
        writer.put([0])
        assert write.started.wait(5)
        for batch in range(1, 5):
            writer.put([batch])
        write.release.set()
    assert write.written == [[0], [1], [2]]


def test_a_failed_write_is_told_when_an_interrupt_ends_the_run_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A write failed, then Ctrl-C ended the block before the failure was raised anywhere: the
    interrupt goes on, and the failure (results not written) is logged, not lost."""
    failed = threading.Event()

    def write(batch: int) -> None:
        failed.set()
        raise RuntimeError("the store went away")

    caplog.set_level("ERROR", logger="datamantri_alerts.services.result_writer")
    with pytest.raises(KeyboardInterrupt), ResultWriter(write) as writer:
        writer.put(0)
        assert failed.wait(10)
        deadline = time.monotonic() + 10
        while not writer.failed and time.monotonic() < deadline:
            time.sleep(0.01)
        raise KeyboardInterrupt
    assert [r.getMessage() for r in caplog.records] == [
        "results were not written: RuntimeError: the store went away"
    ]


def test_a_failed_write_raised_in_the_caller_is_not_logged_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def write(batch: int) -> None:
        raise RuntimeError("the store went away")

    caplog.set_level("ERROR", logger="datamantri_alerts.services.result_writer")
    with pytest.raises(RuntimeError), ResultWriter(write) as writer:
        writer.put(0)
        deadline = time.monotonic() + 10
        while not writer.failed and time.monotonic() < deadline:
            time.sleep(0.01)
        writer.raise_failure()
    assert caplog.records == []
