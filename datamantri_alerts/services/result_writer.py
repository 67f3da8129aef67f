"""A run's check results written on a thread of their own, batch by batch, in order.

The evaluator's main thread drives the check runner: it claims the next batch and starts checks
as slots free up. Writing a batch's results (states, episodes, outbox, leases released: one
transaction, `services.results.apply_results`) takes tens of milliseconds per hundred alerts;
done on the main thread, no check was started meanwhile, so every slot whose check ended during
a write stood idle until the write was done (the I/O-bound benchmark lost about a fifth of its
wall time there). `ResultWriter` takes the batches from the main thread and writes them one
after another on one thread, in the order they came, so the main thread keeps every slot busy.

- A write that fails stops the writer: later batches are not written (their alerts keep their
  leases until they expire, as when a run crashes) and the failure is raised in the main thread
  at its next `put`, `raise_failure` (the evaluator calls it before claiming another batch) and
  at `close`; when the `with` block ends with another exception first (Ctrl-C), the failure is
  logged as an error instead.
- Batches that queued up while a write was in progress are written together, in one call of
  `write` (with `merge`: up to `merge_limit` items of them; without it, one at a time): a run
  whose checks end faster than their results are written pays each transaction's fixed cost
  (statements compiled, rows locked, episodes and silences read, the commit) once per queue,
  not once per batch, and a run that keeps up writes each batch as soon as it is complete.
  When such a call fails (one call must be one transaction), its batches are written again one
  at a time, so the failure stops the batch it is in and the later ones, as without merging.
- Leaving the `with` block normally waits for every batch to be written. Leaving it with an
  exception (Ctrl-C, SIGTERM, a crash), or interrupted during that wait, lets the batch being
  written finish, writes no other, and lets the exception go on: the caller then releases the
  run's leases (`services.evaluate._stop_cleanly`), so the alerts whose results were not
  written are evaluated again by the next run.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sized
from types import TracebackType
from typing import Generic, TypeVar, cast

T = TypeVar("T")

log = logging.getLogger(__name__)


class ResultWriter(Generic[T]):
    """Calls `write(batch)` on a thread of its own for every batch `put`, in order."""

    def __init__(
        self,
        write: Callable[[T], None],
        *,
        name: str = "result-writer",
        merge: Callable[[list[T]], T] | None = None,
        merge_limit: int = 0,
    ) -> None:
        self._write = write
        self._merge = merge
        self._merge_limit = merge_limit
        self._batches: queue.SimpleQueue[T | None] = queue.SimpleQueue()
        self._failure: BaseException | None = None
        self._stopping = False
        #: Set when the writer's thread is done. Waited on instead of `Thread.join`: on
        #: Python 3.11 a join interrupted by a signal marks a running thread as stopped
        #: (CPython's bpo-45274 handling), so a second join returns at once.
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def put(self, batch: T) -> None:
        """Queue a batch to be written; raises the failure of an earlier write, if any."""
        self.raise_failure()
        self._batches.put(batch)

    def close(self) -> None:
        """Wait until every batch put has been written; raise the first write's failure.
        Interrupted while waiting (Ctrl-C, SIGTERM), it abandons the batches not yet written
        and waits for the one being written before the interrupt goes on."""
        self._batches.put(None)
        try:
            self._done.wait()
        except BaseException:
            self.abandon()
            raise
        self.raise_failure()

    def abandon(self) -> None:
        """Write no batch after the one being written; wait for that one."""
        self._stopping = True
        self._batches.put(None)
        self._done.wait()

    def __enter__(self) -> ResultWriter[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
            return
        self.abandon()
        if self._failure is not None and self._failure is not exc:
            # The block ends with another exception (Ctrl-C, SIGTERM, a crash) after a write
            # had failed: that one goes on, and the failure, never raised, is told here.
            from datamantri_alerts.secrets import describe_exception

            log.error("results were not written: %s", describe_exception(self._failure))
            log.debug("the result write that failed", exc_info=self._failure)

    def _serve(self) -> None:
        try:
            last = False
            while not last:
                batch = self._batches.get()
                if batch is None:
                    return
                taken, last = self._queued_behind(batch)
                if self._failure is not None or self._stopping:
                    continue
                try:
                    self._write_all(taken)
                except BaseException as exc:  # raised again in the main thread
                    self._failure = exc
        except BaseException as exc:  # the writer itself failed: never silently
            self._failure = self._failure or exc
        finally:
            self._done.set()

    def _queued_behind(self, batch: T) -> tuple[list[T], bool]:
        """`batch` and the batches queued behind it (up to `merge_limit` items in all, with
        `merge`), and whether the end of the queue (`close`, `abandon`) was among them."""
        taken: list[T] = [batch]
        if self._merge is None:
            return taken, False
        size = len(cast(Sized, batch))  # batches that are merged have a size
        while size < self._merge_limit:
            try:
                more = self._batches.get_nowait()
            except queue.Empty:
                break
            if more is None:
                return taken, True
            taken.append(more)
            size += len(cast(Sized, more))
        return taken, False

    def _write_all(self, taken: list[T]) -> None:
        """Write batches taken together in one call; if that fails, each alone, in order, up to
        the one that fails: a bad result stops its own batch and the later ones, as without
        merging, never the batches before it (one call is one transaction: nothing of the
        failed call was kept)."""
        if len(taken) == 1 or self._merge is None:  # nothing merged (`_queued_behind`)
            self._write(taken[0])
            return
        try:
            self._write(self._merge(taken))
        except Exception:
            for batch in taken:
                self._write(batch)

    @property
    def failed(self) -> bool:
        """Whether a write failed (the batches after it are not written)."""
        return self._failure is not None

    def raise_failure(self) -> None:
        """Raise the failure of an earlier write, if any (e.g. before claiming more work whose
        results could not be written)."""
        if self._failure is not None:
            raise self._failure
