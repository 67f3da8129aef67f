"""One evaluator run: claim due alerts, check them, move their states, queue and deliver.

    start run row + heartbeat /start
    repeat: claim a batch of due alerts (lease) → run their checks concurrently →
            one transaction: states, episodes, outbox rows, leases released
            (`services.results.apply_results`, on the run's result writer's thread)
    deliver every pending notification (this run's and earlier runs' leftovers)
    finish run row + heartbeat success or /fail

Store writes are batched: a batch of alerts costs a fixed handful of statements (bulk UPDATE by
primary key, multi-row INSERT ... RETURNING), not one round trip per alert and column.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update

from datamantri_alerts.clock import Clock
from datamantri_alerts.logs import set_run_id
from datamantri_alerts.services.delivery import count_overdue, deliver_pending
from datamantri_alerts.services.due import due_condition
from datamantri_alerts.services.leases import (
    Holder,
    claim,
    dead_holders,
    give_back,
    renew_held,
    renew_interval,
)
from datamantri_alerts.services.metrics import export_after_run
from datamantri_alerts.services.mute import release_after_mute
from datamantri_alerts.services.results import apply_results
from datamantri_alerts.services.run_summary import RunSummary
from datamantri_alerts.services.signal.hold import held_alert_ids
from datamantri_alerts.store.models import Alert, EvaluatorRun

if TYPE_CHECKING:
    from datamantri_alerts.channels.retry import RetryPolicy
    from datamantri_alerts.checks.pool import SourcePool
    from datamantri_alerts.services.checking import CheckResult
    from datamantri_alerts.store.engine import Store

log = logging.getLogger(__name__)

#: How long claimed alerts stay leased without a renewal. A run renews the leases of what it
#: claimed and has not written yet every `leases.RENEW_LEASES_AFTER` of it
#: (`leases.renew_held`), so a batch may take longer than this; a run that dies or stops
#: looping loses them after at most this.
ALERT_LEASE_TTL = timedelta(minutes=10)
#: A claimed batch holds at most this many units (`services.checking.fit_units`): checks read
#: alone, or groups of up to 50 checks read in one statement (`freshness`), a group only once
#: one of its key answered (`checking.GroupRecord`). A claim takes as many alerts as the last
#: batch made units, 100 units' worth, at most MAX_BATCH_SIZE, and gives back at once
#: (`leases.release`) the alerts past 100 units. So concurrent runs share checks read alone
#: 100 at a time as before, and 5,000 `freshness` alerts at 16 slots cost 18 claims and 12
#: result writes instead of 50 claims.
DEFAULT_BATCH_SIZE = 100
MAX_BATCH_SIZE = 500
#: At most this many results are written in one transaction when batches queued up behind a
#: write (`services.result_writer`): the claims of the run wait for the transaction.
WRITE_MERGE_LIMIT = MAX_BATCH_SIZE


@dataclass
class RunOptions:
    all: bool = False
    ref: str | None = None
    concurrency: int = 16
    #: Alerts claimed at a time, exactly; None: DEFAULT_BATCH_SIZE units' worth, up to
    #: MAX_BATCH_SIZE alerts.
    batch_size: int | None = None
    host: str = "localhost"
    #: How long claimed alerts and notifications stay leased (ALERTS_LEASE_SECONDS).
    lease_ttl: timedelta = ALERT_LEASE_TTL
    #: Environment for recipients and channel settings (default: os.environ).
    environ: Mapping[str, str] | None = None
    retry_policy: RetryPolicy | None = None
    sleep: Callable[[float], None] | None = None
    #: Where to write Prometheus metrics after the run (ALERTS_METRICS_FILE), if anywhere.
    metrics_file: str | None = None


@dataclass
class Progress:
    """Callbacks a terminal front end may pass to follow the run."""

    on_total: Callable[[int], None] = lambda total: None
    on_checked: Callable[[int], None] = lambda n: None
    on_delivering: Callable[[], None] = lambda: None


# --------------------------------------------------------------------------- selection


def count_due(store: Store, now: datetime, all_: bool) -> int:
    """How many alerts look due (for a progress bar; others may claim some of them)."""
    with store.session() as session:
        return int(
            session.scalar(select(func.count()).select_from(Alert).where(*due_condition(now, all_)))
            or 0
        )


# --------------------------------------------------------------------------- the run


def run_evaluation(
    store: Store, clock: Clock, options: RunOptions, progress: Progress | None = None
) -> RunSummary:
    """Evaluate due alerts and deliver notifications; records an evaluator_runs row.

    Interrupted (KeyboardInterrupt: Ctrl-C, or SIGTERM through `interrupts.stop_on_signals`),
    it cancels the data-source statements in flight, releases its leases and records the run as
    `interrupted`, then re-raises."""
    from datamantri_alerts.checks.pool import SourcePool
    from datamantri_alerts.services.heartbeat import Heartbeat

    progress = progress or Progress()
    me = Holder.current(options.host)
    heartbeat = Heartbeat.from_env(options.environ)
    heartbeat.start()
    started = clock.now()
    with store.transaction() as session:
        run_id = session.execute(
            insert(EvaluatorRun).returning(EvaluatorRun.id),
            [{"host": options.host, "pid": me.pid, "started_at": started, "outcome": "running"}],
        ).scalar_one()
    summary = RunSummary(run_id=run_id)
    set_run_id(run_id)
    log.info("evaluator run %s started on %s", run_id, options.host)
    sources = SourcePool(options.concurrency)  # the run's data source connections
    try:
        _release_after_mutes(store, clock)
        _evaluate_due(store, clock, options, me, summary, progress, sources)
        progress.on_delivering()
        summary.notifications = deliver_pending(
            store,
            clock,
            me,
            concurrency=options.concurrency,
            environ=options.environ,
            policy=options.retry_policy,
            sleep=options.sleep,
            lease_ttl=options.lease_ttl,
        )
        summary.notifications.suppressed += summary.suppressed
        summary.problems.extend(summary.notifications.problems)
        summary.overdue = count_overdue(store, clock.now())
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (see interrupts.stop_on_signals)
        reason = str(exc) or "interrupted"
        _stop_cleanly(store, me, sources)
        _finish_run(store, clock, run_id, summary, failure=reason, interrupted=True)
        heartbeat.finish(False, f"run {reason}")
        export_after_run(store, clock, options.metrics_file)
        set_run_id(None)
        raise
    except BaseException as exc:
        _finish_run(store, clock, run_id, summary, failure=f"{type(exc).__name__}: {exc}")
        heartbeat.finish(False, f"run crashed: {type(exc).__name__}")
        export_after_run(store, clock, options.metrics_file)
        set_run_id(None)
        raise
    finally:
        sources.close()
    _finish_run(store, clock, run_id, summary)
    log.info("evaluator run %s finished: %s", run_id, _run_message(summary))
    heartbeat.finish(summary.ok, _run_message(summary))
    export_after_run(store, clock, options.metrics_file)
    set_run_id(None)
    return summary


#: What `AlertSnapshot.of_columns` takes from a claimed alert, in its order.
_SNAPSHOT_COLUMNS = tuple(
    Alert.__table__.c[name]
    for name in ("id", "name", "condition_type", "condition_config", "severity", "check_state")
)


def _evaluate_due(
    store: Store,
    clock: Clock,
    options: RunOptions,
    me: Holder,
    summary: RunSummary,
    progress: Progress,
    sources: SourcePool,
) -> None:
    from datamantri_alerts.services import checking
    from datamantri_alerts.services.checking import (
        AlertSnapshot,
        GroupRecord,
        fit_units,
        prepare_batch,
        run_check_batches,
    )
    from datamantri_alerts.services.checking import store_context_factory as contexts
    from datamantri_alerts.services.result_writer import ResultWriter

    now = clock.now()
    if options.ref is not None:
        with store.session() as session:
            from datamantri_alerts.services.alerts import get_alert

            target = get_alert(session, options.ref).id
        where: list[Any] = [Alert.id == target]
        progress.on_total(1)
    else:
        where = due_condition(now, options.all)
        progress.on_total(count_due(store, now, options.all))

    #: alert id -> when its check was claimed: the evaluation's start, which places it on its grid.
    claimed_at: dict[int, datetime] = {}

    #: How the run's groups answered, for sizing claims (`fit_units`).
    groups = GroupRecord()
    #: Alerts claimed and kept, not written yet: the leases the run renews (`keep_leases`).
    held: set[int] = set()
    held_lock = threading.Lock()

    def claimed_batches() -> Iterator[Sequence[Any]]:
        """Claim the next batch when the check runner has a free slot for it: exactly
        `options.batch_size` alerts when set, else DEFAULT_BATCH_SIZE units' worth."""
        cursor = 0
        dead: list[str] | None = None  # looked up with the first batch (`dead_holders`)
        limit = options.batch_size or DEFAULT_BATCH_SIZE
        previous: list[Any] = []  # the last batch kept, prepared
        while True:
            # A batch whose results could not be written stops the run: claim no more.
            writer.raise_failure()
            if previous:
                # As many alerts as the last batch made units, by what is known now of its
                # groups: 100 units' worth, at most MAX_BATCH_SIZE.
                size, units = fit_units(previous, len(previous), groups)
                limit = min(MAX_BATCH_SIZE, max(1, size * DEFAULT_BATCH_SIZE // max(1, units)))
            now = clock.now()
            with store.transaction() as session:
                if dead is None:
                    dead = dead_holders(session, Alert, where=where, me=me, now=now)
                ids = claim(
                    session,
                    Alert,
                    where=[*where, Alert.id > cursor],
                    order_by=[Alert.id],
                    me=me,
                    now=now,
                    ttl=options.lease_ttl,
                    limit=limit,
                    dead=dead,
                )
            if not ids:
                return
            # Read once the claim is committed, so the write transaction (which the run's result
            # writer waits for) is no longer than the claim: rows of the columns a check needs,
            # not ORM objects, so the recipients are not decrypted, nor every JSON column
            # decoded, for each claimed alert. The rows are leased to this run by then.
            with store.session() as session:
                alerts = session.execute(
                    select(*_SNAPSHOT_COLUMNS)
                    .where(Alert.__table__.c.id.in_(ids))
                    .order_by(Alert.__table__.c.id)
                ).all()
            snapshots = [AlertSnapshot.of_columns(*a) for a in alerts]  # _SNAPSHOT_COLUMNS
            if options.batch_size is not None:
                cursor = max(ids)
                claimed_at.update(dict.fromkeys(ids, now))
                with held_lock:
                    held.update(ids)
                yield snapshots
                continue
            if not snapshots:  # deleted since they were claimed
                cursor = max(ids)
                continue
            prepared = prepare_batch(snapshots)
            kept, _ = fit_units(prepared, DEFAULT_BATCH_SIZE, groups)
            if kept < len(prepared):
                give_back(store, Alert, [p.alert.id for p in prepared[kept:]], me)
                prepared = prepared[:kept]
            cursor = prepared[-1].alert.id
            kept_ids = [p.alert.id for p in prepared]
            claimed_at.update(dict.fromkeys(kept_ids, now))
            with held_lock:
                held.update(kept_ids)
            previous = prepared
            yield prepared

    def write(results: list[CheckResult]) -> None:
        apply_results(store, clock.now(), me, options.host, results, summary, started=claimed_at)
        with held_lock:
            held.difference_update(r.id for r in results)
        progress.on_checked(len(results))

    def keep_leases() -> None:
        """Renew the leases of the alerts claimed and not written yet, from the runner's loop:
        a batch whose checks wait for slots or for slow sources outlives no lease, and a
        stuck run stops renewing (its leases run out and another run takes over). Nor after a
        failed write: those results and the later ones will not be written."""
        if writer.failed:
            return
        with held_lock:
            ids = sorted(held)
        renew_held(store, Alert, ids, me=me, clock=clock, ttl=options.lease_ttl)

    # One pool of check slots across batches: batch k+1 is claimed and started while the last
    # checks of batch k finish, and batch k's results are written as soon as it and the batches
    # before it are complete (or once they have waited FLUSH_AFTER_SECONDS for a slower check),
    # on the writer's thread, while this one keeps the slots busy.
    with ResultWriter(write, merge=_concatenated, merge_limit=WRITE_MERGE_LIMIT) as writer:
        for results in run_check_batches(
            claimed_batches(),
            contexts(store, clock),
            concurrency=options.concurrency,
            sources=sources,
            groups=groups,
            keep_alive=keep_leases,
            flush_after=checking.FLUSH_AFTER_SECONDS,
            keep_alive_every=renew_interval(options.lease_ttl),
        ):
            writer.put(results)
    if options.ref is not None and not summary.results:
        summary.problems.append(
            f"alert {options.ref!r} is being evaluated by another process right now"
        )


def _concatenated(batches: list[list[CheckResult]]) -> list[CheckResult]:
    return [result for batch in batches for result in batch]


def _release_after_mutes(store: Store, clock: Clock) -> None:
    """Queue what a mute that has ended held back (before this run's evaluations, so a FIRING
    goes out before the RESOLVED of the same episode)."""
    with store.transaction() as session:
        now = clock.now()
        release_after_mute(session, now, held=held_alert_ids(session, now))


def _run_message(summary: RunSummary) -> str:
    n = summary.notifications
    parts = [
        f"evaluated {len(summary.results)}",
        f"firing {summary.firing}",
        f"errors {summary.errors}",
        f"sent {n.sent}",
        f"failed {n.failed}",
        f"pending {n.pending}",
        f"overdue {summary.overdue}",
    ]
    if summary.problems:
        parts.append("; ".join(summary.problems[:5]))
    return ", ".join(parts)


def _stop_cleanly(store: Store, me: Holder, sources: SourcePool) -> None:
    """An interrupted run: cancel the data-source queries in flight, give up every lease held,
    so the next run (on any host) takes the alerts and notifications over at once."""
    from datamantri_alerts.services.leases import release_all
    from datamantri_alerts.store.models import Notification

    sources.cancel_all()
    try:
        with store.transaction() as session:
            alerts = release_all(session, Alert, me)
            notifications = release_all(session, Notification, me)
    except Exception as exc:  # the store went away too; the leases expire on their own
        log.info("could not release the leases of %s: %s", me.id, type(exc).__name__)
        return
    log.info(
        "interrupted: queries cancelled, %d alert and %d notification leases released",
        alerts,
        notifications,
    )


def _finish_run(
    store: Store,
    clock: Clock,
    run_id: int,
    summary: RunSummary,
    failure: str | None = None,
    *,
    interrupted: bool = False,
) -> None:
    from datamantri_alerts.secrets import describe_exception, redact_text

    if failure is None:
        message = _run_message(summary)
        outcome = "ok" if summary.ok else "failed"
    elif interrupted:
        message = f"{failure}; {_run_message(summary)}"
        outcome = "interrupted"
    else:
        message = f"crashed: {failure}"
        outcome = "failed"
    try:
        with store.transaction() as session:
            runs = EvaluatorRun.__table__
            session.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(
                    finished_at=clock.now(),
                    outcome=outcome,
                    evaluated=len(summary.results),
                    firing=summary.firing,
                    resolved=summary.resolved,
                    errors=summary.errors,
                    notifications_sent=summary.notifications.sent,
                    notifications_failed=summary.notifications.failed,
                    message=redact_text(message)[:2000],
                )
            )
    except Exception as exc:
        if failure is None:
            raise
        # The run already failed, usually because the store went away: its error is the one
        # line the user sees. This one is for -v (one line) and -vv (the traceback).
        reason = describe_exception(exc)
        log.info("could not record the end of evaluator run %s: %s", run_id, reason)
        log.debug("recording the end of evaluator run %s failed", run_id, exc_info=True)
