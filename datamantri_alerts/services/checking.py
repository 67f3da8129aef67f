"""Run alerts' checks concurrently, each bounded by its own timeout.

`run_checks` is what `evaluate --dry-run` calls: snapshots of alerts in, one result per alert
out, in the same order; `run_check_batches` is the same runner fed batch by batch (the evaluator
claims each batch as slots free up) and yielding each batch's results. It writes nothing;
persisting outcomes and check_state is the evaluator's business.

Checks run on a persistent pool of `concurrency` daemon worker threads (started as needed, not
one per check). The caller waits for a check no longer than its config's timeout (plus a short
grace for the check to report its own, more precise, timeout error); past that the check is
reported as an `error` "timed out after Ns", its slot goes to the next alert and its worker is
replaced: the abandoned worker is daemonic, so it can never hold the process open, ends once its
check does (the data source connection it sits on has socket timeouts of its own), and then
leaves instead of taking more work.

Each run has one `checks.pool.SourcePool` (pooled engines per data source, at most
`concurrency` connections each; one watchdog thread for every statement bound; one HTTP session
without cookies), handed to every check as `ctx.sources` and closed when the run ends.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from datamantri_alerts.checks import check_types, get_check
from datamantri_alerts.checks.base import (
    GROUP_BOUND_SECONDS,
    CannotEvaluate,
    CheckContext,
    Outcome,
)
from datamantri_alerts.checks.values import json_safe

if TYPE_CHECKING:
    from datamantri_alerts.checks.pool import SourcePool

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 16
#: A result finished this many seconds ago goes out without waiting for the rest of its batch
#: (`run_check_batches`): a slow check holds back no result but its own for longer. Short
#: enough for an alert evaluated every minute, long enough that a batch of checks of a few
#: seconds each is written in a few transactions, not one per second.
FLUSH_AFTER_SECONDS = 5.0
#: Extra seconds granted beyond a check's timeout before the runner stops waiting for it.
TIMEOUT_GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class AlertSnapshot:
    """What running a check needs from an alert, detached from any session."""

    id: int | None
    name: str
    condition_type: str
    condition_config: dict[str, Any]
    severity: str | None = None
    check_state: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, alert: Any) -> AlertSnapshot:
        """From an `Alert` (or anything with the same attributes)."""
        return cls.of_columns(
            alert.id,
            alert.name,
            alert.condition_type,
            alert.condition_config,
            getattr(alert, "severity", None),
            getattr(alert, "check_state", None),
        )

    @classmethod
    def of_columns(
        cls,
        id: int | None,
        name: str,
        condition_type: str,
        condition_config: Mapping[str, Any] | None,
        severity: str | None,
        check_state: Mapping[str, Any] | None,
    ) -> AlertSnapshot:
        """From an alert's columns in this order (a row of them unpacked: `*row`, which costs a
        tenth of reading a SQLAlchemy 2.1 row's six attributes by name)."""
        fields = {
            "id": id,
            "name": name,
            "condition_type": condition_type,
            "condition_config": dict(condition_config or {}),
            "severity": severity,
            "check_state": dict(check_state or {}),
        }
        if cls is not AlertSnapshot:  # a subclass may have fields (and defaults) of its own
            return cls(**fields)
        # Every field at once: a frozen dataclass's __init__ sets each through
        # object.__setattr__, half of what a snapshot cost (5,000 a run). The same instance.
        snapshot = object.__new__(cls)
        snapshot.__dict__.update(fields)
        return snapshot


@dataclass
class CheckResult:
    id: int | None
    name: str
    condition_type: str
    outcome: Literal["ok", "firing", "error"]
    severity: str
    summary: str
    details: dict[str, Any]
    duration_ms: int
    #: What the check asked to keep until its next evaluation (None: keep what is stored).
    check_state: dict[str, Any] | None = None
    timed_out: bool = False
    #: The alert's type grades its outcomes: a firing outcome's severity is its own, not the
    #: alert's (so it can escalate within an episode).
    severity_from_outcome: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "condition_type": self.condition_type,
            "outcome": self.outcome,
            "severity": self.severity,
            "summary": self.summary,
            "details": self.details,
            "duration_ms": self.duration_ms,
        }


#: `_Prepared.group` before `_group_key` was asked.
_NOT_ASKED: Any = object()


@dataclass
class _Prepared:
    index: int
    alert: AlertSnapshot
    check: Any = None
    config: Any = None
    timeout: float = 0.0
    early: Outcome | None = None  # set when the alert cannot even start
    #: Seconds its group spent before handing it back to be evaluated alone (its duration).
    spent: float = 0.0
    #: `_group_key`'s answer once asked (claims size batches and the runner groups them by it).
    group: Any = field(default=_NOT_ASKED, repr=False)


def _prepare(index: int, alert: AlertSnapshot) -> _Prepared:
    prepared = _Prepared(index, alert)
    try:
        prepared.check = get_check(alert.condition_type)
    except KeyError:
        prepared.early = Outcome.error(
            f"unknown alert type {alert.condition_type!r} (known: {', '.join(check_types())})"
        )
        return prepared
    except Exception as exc:  # a third-party entry point that fails to load
        prepared.early = Outcome.error(
            f"alert type {alert.condition_type!r} failed to load: {_describe(exc)}"
        )
        return prepared
    try:
        prepared.config = prepared.check.config_model.model_validate(alert.condition_config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        prepared.early = Outcome.error(
            f"invalid condition_config{f'.{where}' if where else ''}: {first.get('msg')}"
        )
        return prepared
    prepared.timeout = float(prepared.config.timeout())
    return prepared


def _describe(exc: BaseException) -> str:
    from datamantri_alerts.secrets import describe_exception

    return describe_exception(exc)


def evaluate_prepared(prepared: _Prepared, ctx: CheckContext) -> Outcome:
    """Run one check; whatever goes wrong becomes an error outcome, never an exception.
    What it logs carries the alert's id."""
    from datamantri_alerts.logs import log_context

    with log_context(alert_id=prepared.alert.id):
        return _evaluate_prepared(prepared, ctx)


def _evaluate_prepared(prepared: _Prepared, ctx: CheckContext) -> Outcome:
    if prepared.early is not None:
        return prepared.early
    try:
        outcome = prepared.check.evaluate(prepared.config, ctx)
    except CannotEvaluate as exc:
        return _cannot_evaluate(exc)
    except Exception as exc:
        log.exception("check %s of alert %r crashed", prepared.alert.condition_type, ctx.alert_name)
        return Outcome.error(f"the check crashed: {_describe(exc)}")
    if not isinstance(outcome, Outcome):
        return Outcome.error(
            f"the check returned {type(outcome).__name__}, not an Outcome",
        )
    return outcome


def _cannot_evaluate(exc: CannotEvaluate) -> Outcome:
    # A check's own error text (ours or a third party's) is exception text: redacted here,
    # the one place every check's "could not evaluate" passes.
    from datamantri_alerts.secrets import redact_text, redact_value

    message = redact_text(str(exc))
    details = {**redact_value(exc.details), "error": message}
    return Outcome.error(message, **details)


def evaluate_group(group: list[_Prepared], contexts: list[CheckContext]) -> list[Outcome | None]:
    """Run a group of checks of one `GroupedCheck` type together: one outcome per member, or
    None for a member to evaluate alone (every member, when the group itself went wrong). A
    CannotEvaluate raised by the group (its data source is unknown or unreachable) is every
    member's error outcome, as each would have had alone."""
    from datamantri_alerts.logs import log_context

    try:
        with log_context(alert_id=group[0].alert.id):
            outcomes = group[0].check.evaluate_group([p.config for p in group], contexts)
    except CannotEvaluate as exc:
        outcome = _cannot_evaluate(exc)
        return [outcome] * len(group)
    except Exception:
        log.debug("a group of %s checks failed; evaluating them alone", len(group), exc_info=True)
        return [None] * len(group)
    if not isinstance(outcomes, list) or len(outcomes) != len(group):
        return [None] * len(group)
    return [o if isinstance(o, Outcome) else None for o in outcomes]


def _group_key(item: _Prepared) -> Any:
    """(condition_type, group key) of a check read in groups; None for one read alone.
    Asked once per check (`_Prepared.group`): a claim sizes batches by it twice, and the
    runner groups by it and records how groups answered."""
    if item.group is not _NOT_ASKED:
        return item.group
    item.group = None
    # `GroupedCheck`'s two methods, looked up directly: a runtime Protocol isinstance check
    # costs 8 µs per alert.
    group_key = getattr(item.check, "group_key", None)
    if item.early is not None or group_key is None or not hasattr(item.check, "evaluate_group"):
        return None
    try:
        key = group_key(item.config)
    except Exception:
        return None
    item.group = None if key is None else (item.alert.condition_type, key)
    return item.group


def _grouped(prepared: list[_Prepared]) -> list[list[_Prepared]]:
    """A batch's checks as units to start, in order: one check, or up to `GROUP_SIZE` checks of
    a `GroupedCheck` type sharing a group key (placed where their first member was)."""
    from datamantri_alerts.checks.base import GROUP_SIZE

    units: list[list[_Prepared]] = []
    open_groups: dict[Any, list[_Prepared]] = {}
    for item in prepared:
        key = _group_key(item)
        if key is None:
            units.append([item])
            continue
        group = open_groups.get(key)
        if group is None or len(group) >= GROUP_SIZE:
            group = open_groups[key] = []
            units.append(group)
        group.append(item)
    return units


def prepare_batch(alerts: Sequence[AlertSnapshot]) -> list[_Prepared]:
    """Each alert's check and validated configuration, as the runner starts them:
    `run_check_batches` takes a batch of these (or a prefix of one) as it is."""
    return [_prepare(index, alert) for index, alert in enumerate(alerts)]


@dataclass
class GroupRecord:
    """What a run has learned of its group keys (`_group_key`), for sizing batches by units
    (`fit_units`): a key counts as read in groups once a group of it answered every member,
    and as checks read alone before that, and for good once a group of it handed back a
    member (its statement failed, was cut off, or a value was unreadable: those members are
    then read alone, each at its own cost). `run_check_batches` records each group's answer.
    """

    answered: set[Any] = field(default_factory=set)
    failed: set[Any] = field(default_factory=set)

    def record(self, key: Any, outcome: Sequence[Any]) -> None:
        """A group of `key` answered with `outcome` (None: a member handed back)."""
        if all(o is not None for o in outcome):
            self.answered.add(key)
        else:
            self.failed.add(key)

    def read_in_groups(self, key: Any) -> bool:
        return key in self.answered and key not in self.failed


def fit_units(
    prepared: Sequence[_Prepared], units: int, groups: GroupRecord | None = None
) -> tuple[int, int]:
    """(n, u): the first n of `prepared` make u units, the most that stay within `units`, as
    the runner starts them (`_grouped`): a check read alone, or up to `GROUP_SIZE` checks read
    together, for a key `groups` knows to answer (`GroupRecord`; None: every key); any other
    counts as its checks read alone. n is at least 1 when `prepared` is not empty."""
    from datamantri_alerts.checks.base import GROUP_SIZE

    used = 0
    members: dict[Any, int] = {}  # group key -> members in its last group so far
    for n, item in enumerate(prepared):
        key = _group_key(item)
        if key is not None and groups is not None and not groups.read_in_groups(key):
            key = None
        if key is None or members.get(key, GROUP_SIZE) >= GROUP_SIZE:
            if used == units:
                return n, used
            used += 1
            if key is not None:
                members[key] = 0
        if key is not None:
            members[key] += 1
    return len(prepared), used


def _severity(alert: AlertSnapshot, outcome: Outcome | None, check: Any) -> tuple[str, bool]:
    """(severity, whether the alert's type grades its outcomes).

    The alert's own severity, unless its type grades its outcomes (`severity_from_outcome`,
    e.g. `freshness`: warning past warn_after, critical past error_after) and this outcome
    carries a severity.
    """
    graded = bool(getattr(check, "severity_from_outcome", False))
    if graded and outcome is not None and outcome.severity:
        return outcome.severity, True
    if alert.severity:
        return alert.severity, graded
    if outcome is not None and outcome.severity:
        return outcome.severity, graded
    return str(getattr(check, "default_severity", None) or "warning"), graded


def _result(
    prepared: _Prepared, outcome: Outcome, duration: float, *, timed_out: bool = False
) -> CheckResult:
    alert = prepared.alert
    severity, graded = _severity(alert, outcome, prepared.check)
    return CheckResult(
        id=alert.id,
        name=alert.name,
        condition_type=alert.condition_type,
        outcome=outcome.status,
        severity=severity,
        severity_from_outcome=graded,
        summary=outcome.summary,
        details=json_safe(outcome.details or {}),
        duration_ms=int((duration + prepared.spent) * 1000),
        check_state=outcome.check_state,
        timed_out=timed_out,
    )


def run_checks(
    alerts: Sequence[AlertSnapshot],
    make_context: Callable[[AlertSnapshot], CheckContext],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    grace: float = TIMEOUT_GRACE_SECONDS,
    sources: SourcePool | None = None,
) -> list[CheckResult]:
    """Evaluate every alert's check, `concurrency` at a time; results in the input order
    (`sources` as for `run_check_batches`)."""
    results: list[CheckResult] = []
    batches = run_check_batches(
        [alerts],
        make_context,
        concurrency=concurrency,
        grace=grace,
        sources=sources,
        flush_after=None,
    )
    for batch in batches:
        results.extend(batch)
    return results


@dataclass
class _Batch:
    prepared: list[_Prepared]
    results: list[CheckResult | None]
    left: int
    #: Indexes of the results recorded and not yet yielded, and when the first of them was.
    ready: list[int] = field(default_factory=list)
    ready_since: float = 0.0


def run_check_batches(
    batches: Iterable[Sequence[AlertSnapshot] | Sequence[_Prepared]],
    make_context: Callable[[AlertSnapshot], CheckContext],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    grace: float = TIMEOUT_GRACE_SECONDS,
    sources: SourcePool | None = None,
    keep_alive: Callable[[], None] | None = None,
    keep_alive_every: float = 60.0,
    flush_after: float | None = FLUSH_AFTER_SECONDS,
    groups: GroupRecord | None = None,
) -> Iterator[list[CheckResult]]:
    """Run batches of alerts through one set of `concurrency` slots; yield their results.

    A batch is alerts (`AlertSnapshot`) or what `prepare_batch` made of them (or a prefix).
    `groups`: where the runner records how each group answered, for a caller that sizes
    batches by units (`fit_units`).

    `sources`: the run's data source pool, when the caller wants to hold it (e.g. to call
    `cancel_all()` on SIGTERM) and close it itself; else the runner makes one and closes it at
    the end.

    `keep_alive`: called from the runner's own loop every `keep_alive_every` seconds (it wakes
    for it while it waits for checks), so only while the runner is alive and running, never by
    a thread that would outlive a stuck one (`services.evaluate` renews the run's leases).

    The next batch is drawn from `batches` (which may claim it from the store) only when a slot
    is free and every check of the batches drawn so far has started, so slots never idle at a
    batch boundary waiting for the slowest check of the previous batch. A batch's results come
    out in its input order as soon as it and every batch drawn before it are complete; a
    result that has waited `flush_after` seconds (for the rest of its batch, or for a batch
    before it) comes out without them (with the others of its batch recorded by then, in input
    order), so a slow check (a probe with a long timeout, a source that stalls) holds back
    other results by `flush_after` at most. `flush_after=None`: each batch whole, in the order
    drawn (`run_checks`).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    from contextlib import nullcontext

    from datamantri_alerts.checks.pool import SourcePool

    owned = SourcePool(concurrency) if sources is None else nullcontext(sources)
    with owned as pool, _Workers() as workers:
        yield from _run(
            batches,
            make_context,
            concurrency,
            grace,
            pool,
            workers,
            keep_alive,
            keep_alive_every,
            flush_after,
            groups,
        )


@dataclass
class _Job:
    """One check, or a group of checks read together (`group`, with a context each), handed to
    a worker; `abandoned` once the runner stopped waiting for it."""

    key: int
    prepared: _Prepared
    ctx: CheckContext
    started: float
    group: list[tuple[_Prepared, CheckContext]] | None = None
    abandoned: bool = False
    done: bool = False

    @property
    def members(self) -> list[_Prepared]:
        return [p for p, _ in self.group] if self.group else [self.prepared]


class _Workers:
    """Persistent daemon worker threads taking checks from one queue.

    `submit` starts a worker only when every live one is busy; `abandon` gives up on a running
    check: its worker leaves once the check ends, and the next `submit` starts a replacement.
    Results go to `finished` as (key, outcome, seconds); a group's outcome is a list, one entry
    per member (None: evaluate that member alone).
    """

    def __init__(self) -> None:
        self.finished: queue.SimpleQueue[tuple[int, Outcome | list[Outcome | None], float]] = (
            queue.SimpleQueue()
        )
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._live = 0  # workers not abandoned to a check
        self._busy = 0  # of those, running a check
        self._names = itertools.count(1)

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            live = self._live
        for _ in range(live):
            self._jobs.put(None)

    def submit(self, job: _Job) -> None:
        with self._lock:
            self._busy += 1
            start = self._busy > self._live
            if start:
                self._live += 1
        if start:
            threading.Thread(
                target=self._serve, name=f"check-worker-{next(self._names)}", daemon=True
            ).start()
        self._jobs.put(job)

    def abandon(self, job: _Job) -> bool:
        """Stop waiting for a running check; False when it has just finished."""
        with self._lock:
            if job.done:
                return False
            job.abandoned = True
            self._live -= 1
            self._busy -= 1
            return True

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            outcome: Outcome | list[Outcome | None]
            if job.group:
                outcome = evaluate_group([p for p, _ in job.group], [c for _, c in job.group])
            else:
                outcome = evaluate_prepared(job.prepared, job.ctx)
            with self._lock:
                job.done = True
                if job.abandoned:
                    return  # replaced meanwhile: leave
                self._busy -= 1
            self.finished.put((job.key, outcome, time.monotonic() - job.started))


def _run(
    batches: Iterable[Sequence[AlertSnapshot] | Sequence[_Prepared]],
    make_context: Callable[[AlertSnapshot], CheckContext],
    concurrency: int,
    grace: float,
    pool: SourcePool,
    workers: _Workers,
    keep_alive: Callable[[], None] | None = None,
    keep_alive_every: float = 60.0,
    flush_after: float | None = FLUSH_AFTER_SECONDS,
    groups: GroupRecord | None = None,
) -> Iterator[list[CheckResult]]:
    source = iter(batches)
    kept_alive = time.monotonic()
    drawn: deque[_Batch] = deque()
    # job key -> (batch, job, cutoff) of the checks being waited for
    running: dict[int, tuple[_Batch, _Job, float]] = {}
    # Units not started yet: one check, or a group read together (`checks.base.GroupedCheck`).
    waiting: deque[tuple[_Batch, list[_Prepared]]] = deque()
    # Members a group could not answer: started alone, before anything else.
    alone: deque[tuple[_Batch, _Prepared]] = deque()
    # Group keys whose group was cut off at its bound: not grouped again in this run.
    cut_off: set[Any] = set()
    keys = itertools.count()

    def record(batch: _Batch, job: _Prepared, result: CheckResult) -> None:
        batch.results[job.index] = result
        batch.left -= 1
        if not batch.ready:
            batch.ready_since = time.monotonic()
        batch.ready.append(job.index)

    def keep_alive_if_due() -> None:
        nonlocal kept_alive
        if keep_alive is not None and time.monotonic() - kept_alive >= keep_alive_every:
            keep_alive()
            kept_alive = time.monotonic()

    def context(prepared: _Prepared, cutoff: float) -> CheckContext:
        ctx = make_context(prepared.alert)
        ctx.deadline = cutoff
        ctx.sources = pool
        return ctx

    def submit(batch: _Batch, unit: list[_Prepared]) -> None:
        started = time.monotonic()
        first = unit[0]
        cutoff = started + min(p.timeout for p in unit) + grace
        ctx = context(first, cutoff)
        group = None
        if len(unit) > 1:
            group = [(first, ctx)] + [(p, context(p, cutoff)) for p in unit[1:]]
        job = _Job(next(keys), first, ctx, started, group=group)
        running[job.key] = (batch, job, cutoff)
        workers.submit(job)

    def start_next() -> bool:
        while True:
            if alone:
                batch, prepared = alone.popleft()
                submit(batch, [prepared])
                return True
            while waiting:
                batch, unit = waiting.popleft()
                if len(unit) > 1 and _group_key(unit[0]) in cut_off:
                    waiting.extendleft((batch, [p]) for p in reversed(unit))
                    continue
                if unit[0].early is not None:
                    record(batch, unit[0], _result(unit[0], unit[0].early, 0.0))
                    continue
                submit(batch, unit)
                return True
            keep_alive_if_due()  # also between claims of batches that start no check
            alerts = next(source, None)
            if alerts is None:
                return False
            prepared_batch = [
                alert if isinstance(alert, _Prepared) else _prepare(index, alert)
                for index, alert in enumerate(alerts)
            ]
            batch = _Batch(prepared_batch, [None] * len(prepared_batch), len(prepared_batch))
            drawn.append(batch)
            waiting.extend((batch, unit) for unit in _grouped(prepared_batch))

    def finish(batch: _Batch, job: _Job, outcome: Any, duration: float) -> None:
        if job.group is None:
            record(batch, job.prepared, _result(job.prepared, outcome, duration))
            return
        if all(o is None for o in outcome) and duration >= 0.9 * GROUP_BOUND_SECONDS:
            # The group was cut off at its bound: these tables are slow to read together (or
            # one is locked). The rest of the run reads this key's alerts alone, so a slow
            # source pays the bound once per run, not once per group.
            cut_off.add(_group_key(job.prepared))
        if groups is not None:
            groups.record(_group_key(job.prepared), outcome)
        for member, member_outcome in zip(job.members, outcome, strict=True):
            if member_outcome is None:
                member.spent = duration
                alone.append((batch, member))
            else:
                record(batch, member, _result(member, member_outcome, duration))

    def take_ready(batch: _Batch) -> list[CheckResult]:
        ready, batch.ready = sorted(batch.ready), []
        return [r for r in (batch.results[i] for i in ready) if r is not None]

    def complete() -> Iterator[list[CheckResult]]:
        """The complete batches at the head, in the order drawn (what a run mostly writes, and
        together: `services.result_writer` merges what queued up); then, behind a batch still
        waiting for a check, the results that have waited `flush_after` for it."""
        while drawn and drawn[0].left == 0:
            batch = drawn.popleft()
            if batch.ready:
                yield take_ready(batch)
        if flush_after is None:
            return
        now = time.monotonic()
        for batch in list(drawn):
            if batch.ready and now - batch.ready_since >= flush_after:
                yield take_ready(batch)
            if batch.left == 0 and not batch.ready:
                drawn.remove(batch)

    def wake_at() -> float:
        """When the loop must look again: a check's cutoff, a renewal, results to flush."""
        wake = min(cutoff for *_, cutoff in running.values())
        if keep_alive is not None:
            wake = min(wake, kept_alive + keep_alive_every)
        if flush_after is not None:
            for batch in drawn:
                if batch.ready:
                    wake = min(wake, batch.ready_since + flush_after)
        return wake

    more = True
    while more or running or alone:
        keep_alive_if_due()
        while (more or alone) and len(running) < concurrency:
            more = start_next() and more
        yield from complete()
        if not running:
            continue
        wait = max(0.0, wake_at() - time.monotonic())
        try:
            key, outcome, duration = workers.finished.get(timeout=wait)
            if key in running:
                batch, job, _ = running.pop(key)
                finish(batch, job, outcome, duration)
        except queue.Empty:
            pass
        now = time.monotonic()
        for key, (batch, job, cutoff) in list(running.items()):
            if now >= cutoff and workers.abandon(job):
                del running[key]
                for member in job.members:
                    limit = f"{member.timeout:g}s"
                    outcome = Outcome.error(
                        f"timed out after {limit}", error=f"the check did not finish in {limit}"
                    )
                    result = _result(member, outcome, now - job.started, timed_out=True)
                    record(batch, member, result)
        yield from complete()
    yield from complete()


def store_context_factory(store: Any, clock: Any) -> Callable[[AlertSnapshot], CheckContext]:
    """Contexts whose checks read the given store (job runs, data sources) and clock."""
    run_cache: dict[Any, Any] = {}

    def make(alert: AlertSnapshot) -> CheckContext:
        return CheckContext(
            clock=clock,
            session_factory=store.session,
            alert_id=alert.id,
            alert_name=alert.name,
            check_state=dict(alert.check_state),
            run_cache=run_cache,
        )

    return make
