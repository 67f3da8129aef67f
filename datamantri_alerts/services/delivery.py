"""Delivery: send what the outbox holds, at least once, and record every outcome.

Pending rows are claimed with a lease (see `leases`), sent concurrently through the one retry
policy (`channels.retry.deliver`: backoff, `Retry-After`, pacing), then recorded in one
transaction per batch: on the row (status, attempts, last_error, sent_at) and in the episode's
`notifications_sent` / `notification_errors`. A transient failure that outlasts the in-run retries
stays pending for a later run (with a growing delay) until it is `MAX_AGE` old, then it is failed;
a permanent one is failed at once. A process killed mid-send leaves its rows leased to a dead pid,
which the next run on the host takes over at once: nothing is lost, and only the sends in flight
at the kill can be repeated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from datamantri_alerts.clock import Clock
from datamantri_alerts.services.leases import (
    Holder,
    claim,
    give_back,
    lock_rows,
    renew_held,
    renew_interval,
    still_held,
)
from datamantri_alerts.services.signal.digest import DigestPolicy, Unit, plan, send_digest
from datamantri_alerts.store.models import AlertHistory, Notification

if TYPE_CHECKING:
    from datamantri_alerts.channels.retry import DeliveryResult, RetryPolicy
    from datamantri_alerts.store.engine import Store

log = logging.getLogger(__name__)

#: A notification still undelivered this long after it was queued is given up (failed).
MAX_AGE = timedelta(hours=24)
#: A notification waiting for its retry is not a failed run until it is this old (see
#: `count_overdue`): a rate limit (429 + Retry-After) must not fail every run while it lasts.
OVERDUE_AFTER = timedelta(minutes=15)
#: How long a claimed batch stays leased; a live holder is never displaced before this.
LEASE_TTL = timedelta(minutes=10)
#: Longest wait between two runs' retries of a transient failure.
MAX_RETRY_DELAY = timedelta(minutes=30)
BATCH_SIZE = 100
#: Longest a finished send waits to be recorded (a crash repeats only unrecorded sends).
RECORD_EVERY = 0.5


@dataclass
class DeliveryTally:
    sent: int = 0
    failed: int = 0
    #: Tried in this run, failed transiently, left for a later run.
    pending: int = 0
    suppressed: int = 0
    problems: list[str] = field(default_factory=list)
    #: The outbox rows whose sends this run recorded (sent, pending for a retry, or failed).
    tried: set[int] = field(default_factory=set)

    def as_json(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "pending": self.pending,
            "suppressed": self.suppressed,
        }


@dataclass(frozen=True)
class Claimed:
    """A leased outbox row, detached from the session."""

    id: int
    history_id: int | None
    channel: str
    recipient: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    #: The episode's stored tracker key (`AlertHistory.incident_key`), None when derived.
    incident_key: str | None = None


def later_retry_delay(runs_so_far: int, retry_after: float | None = None) -> timedelta:
    """1, 2, 4, ... minutes between runs' retries, or longer when the service asked for it
    (`retry_after` seconds, e.g. a 429's Retry-After), capped at MAX_RETRY_DELAY."""
    delay = timedelta(minutes=2 ** max(0, min(runs_so_far - 1, 10)))
    if retry_after is not None and retry_after > 0:
        delay = max(delay, timedelta(seconds=retry_after))
    return min(delay, MAX_RETRY_DELAY)


def send_one(
    row: Claimed,
    *,
    environ: Mapping[str, str] | None,
    policy: RetryPolicy | None,
    sleep: Callable[[float], None] | None,
) -> DeliveryResult:
    """One outbox row through the shared retry policy; never raises."""
    from datamantri_alerts.channels import get_channel
    from datamantri_alerts.channels.base import Message
    from datamantri_alerts.channels.retry import deliver

    def refused(reason: str) -> DeliveryResult:
        return failed_result(row, reason)

    try:
        channel = get_channel(row.channel)
    except KeyError:
        return refused(f"unknown channel {row.channel!r}")
    if not row.recipient:
        return refused(f"no {row.channel} recipient configured for this alert")
    try:
        message = Message.model_validate(row.payload)
    except Exception as exc:  # a row written by an incompatible version
        return refused(f"unreadable message payload: {type(exc).__name__}")
    if row.incident_key is not None:
        # Read from the episode at send time, not queued in the payload, so rows queued
        # before the upgrade get it too.
        message = message.model_copy(update={"incident_key": row.incident_key})
    kwargs: dict[str, Any] = {"environ": environ, "policy": policy}
    if sleep is not None:
        kwargs["sleep"] = sleep
    from datamantri_alerts.logs import log_context

    try:
        with log_context(alert_id=message.alert_id):
            return deliver(channel, message, row.recipient, **kwargs)
    except Exception as exc:  # deliver() promises not to raise; keep the batch alive if it does
        from datamantri_alerts.secrets import redact_text

        log.exception("delivery of notification %s crashed", row.id)
        return refused(redact_text(f"internal error: {type(exc).__name__}: {exc}"))


def failed_result(row: Claimed, reason: str) -> DeliveryResult:
    """A permanent failure of row's send that never reached the channel, for reason (safe to
    show and store)."""
    from datamantri_alerts.channels.retry import DeliveryResult

    return DeliveryResult(
        row.channel, row.recipient, "-", "failed", 0, 0, error=reason, retryable=False
    )


def send_unit(
    unit: Unit,
    *,
    environ: Mapping[str, str] | None,
    policy: RetryPolicy | None,
    sleep: Callable[[float], None] | None,
) -> list[tuple[Claimed, DeliveryResult]]:
    """One row, or a digest's rows (`services.signal.digest`), each with its outcome."""
    if unit.digest_id is None:
        return [
            (row, send_one(row, environ=environ, policy=policy, sleep=sleep)) for row in unit.rows
        ]
    return send_digest(unit, environ=environ, policy=policy, sleep=sleep)


def claim_pending(
    store: Store,
    me: Holder,
    now: datetime,
    limit: int,
    ttl: timedelta = LEASE_TTL,
    scope: Sequence[Any] = (),
) -> list[Claimed]:
    """Lease up to limit pending rows that are due (and match every `scope` condition) and
    may go now (`_withhold_after_resolve`). Rows held back to wait (still pending and due) are
    passed over for the rows after them, so a batch of them never looks like nothing to send."""
    passed: list[int] = []  # held back by this call: claimed again, they would be again
    while True:
        claimed = _claim_batch(store, me, now, limit, ttl, scope, passed)
        if claimed is None:
            return []
        rows, held_back = claimed
        if rows:
            return rows
        passed.extend(held_back)


def _claim_batch(
    store: Store,
    me: Holder,
    now: datetime,
    limit: int,
    ttl: timedelta,
    scope: Sequence[Any],
    passed: Sequence[int],
) -> tuple[list[Claimed], list[int]] | None:
    """One claim of `claim_pending`, leaving out the rows `passed` over: (rows to send, ids
    held back to wait), or None when nothing was due."""
    not_passed = [Notification.id.not_in(list(passed))] if passed else []
    with store.transaction() as session:
        ids = claim(
            session,
            Notification,
            where=[
                Notification.status == "pending",
                Notification.next_attempt_at <= now,
                *scope,
                *not_passed,
            ],
            order_by=[Notification.id],
            me=me,
            now=now,
            ttl=ttl,
            limit=limit,
        )
        if not ids:
            return None
        kept = _withhold_after_resolve(session, ids, now, ttl)
        if not kept:
            # Suppressed rows are no longer pending; the others wait (released, still due).
            return [], ids
        ids = kept
        rows = session.execute(
            select(
                Notification.id,
                Notification.history_id,
                Notification.channel,
                Notification.recipient,
                Notification.kind,
                Notification.payload,
                Notification.attempts,
                Notification.created_at,
                AlertHistory.incident_key,
            )
            .outerjoin(AlertHistory, AlertHistory.id == Notification.history_id)
            .where(Notification.id.in_(ids))
            .order_by(Notification.id)
        ).all()
    return [Claimed(*row) for row in rows], []


def _withhold_after_resolve(
    session: Any, ids: list[int], now: datetime, ttl: timedelta = LEASE_TTL
) -> list[int]:
    """Of the rows just claimed, the ones to send. Nothing goes to a destination after the
    RESOLVED of its episode (every send of the outbox is claimed here, so the rule holds
    whoever queued the row):

    * an ACKNOWLEDGED row whose episode is resolved (an acknowledge after a resolve would
      reopen nothing and tell a tracker the wrong order);
    * a triggering message (FIRING, REPEAT, ESCALATED, FLAPPING, could-not-evaluate) of a
      resolved episode whose destination has that episode's RESOLVED queued or sent: a FIRING
      retried after a 429 would otherwise re-open, after the RESOLVED, an incident nothing
      closes again (`services.signal.closing`);
    * a second message telling a destination the episode ended (a flap settling as RESOLVED
      after the episode's RESOLVED, or after `alerts history resolve` queued one): each
      destination hears an episode's end once, from the first such row queued.

    Those rows are recorded as suppressed with the reason and released, in the claiming
    transaction. And a message telling a destination the episode ended waits while a
    triggering message of the episode to that destination is being sent (pending under a live
    lease, claimed before: by another evaluator, by this run's earlier batch, or before an
    `alerts history resolve`): sent now, it would reach the tracker before the trigger, which
    would then open an incident nothing closes. It is released, still pending and due, and
    goes once that send is over (after the trigger, or, if the trigger is retried later, the
    trigger is suppressed then as above); it waits at most `ttl` (a lease's length) after it
    was queued, so a send that never ends (a hung process that still renews) holds no RESOLVED
    back for long."""
    from datamantri_alerts.services.signal.ack import ACK_KIND, RESOLVED_FIRST, triggers
    from datamantri_alerts.services.signal.closing import RESOLVED_FIRST as TRIGGER_AFTER
    from datamantri_alerts.services.signal.closing import RESOLVED_ONCE as ONCE
    from datamantri_alerts.services.signal.closing import episode_messages, is_resolved

    claimed = session.execute(
        select(
            Notification.id,
            Notification.history_id,
            Notification.channel,
            Notification.recipient,
            Notification.kind,
            Notification.payload,
            Notification.created_at,
        )
        .join(AlertHistory, AlertHistory.id == Notification.history_id)
        .where(Notification.id.in_(ids), AlertHistory.resolved_at.is_not(None))
    ).all()
    if not claimed:
        return ids
    late_acks = {row.id for row in claimed if row.kind == ACK_KIND}
    candidates = [row for row in claimed if row.kind != ACK_KIND and triggers(row.payload)]
    ends = [row for row in claimed if row.kind != ACK_KIND and is_resolved(row.kind, row.payload)]
    late_triggers: set[int] = set()
    told_twice: set[int] = set()
    if candidates or ends:
        episodes = sorted({row.history_id for row in (*candidates, *ends)})
        told_resolved: dict[tuple[int, str, str], list[tuple[int, str]]] = {}
        for row_id, history_id, channel, recipient, kind, status, payload in episode_messages(
            session, episodes, ("pending", "sent")
        ):
            if is_resolved(kind, payload):
                told_resolved.setdefault((history_id, channel, recipient), []).append(
                    (row_id, status)
                )
        late_triggers = {
            row.id
            for row in candidates
            if (row.history_id, row.channel, row.recipient) in told_resolved
        }
        told_twice = {
            row.id
            for row in ends
            if any(
                other != row.id and (status == "sent" or other < row.id)
                for other, status in told_resolved.get(
                    (row.history_id, row.channel, row.recipient), []
                )
            )
        }
    for late, reason in (
        (late_acks, RESOLVED_FIRST),
        (late_triggers, TRIGGER_AFTER),
        (told_twice, ONCE),
    ):
        if late:
            session.execute(
                update(Notification)
                .where(Notification.id.in_(sorted(late)))
                .values(
                    status="suppressed",
                    last_error=reason,
                    lease_holder=None,
                    lease_expires_at=None,
                )
                .execution_options(synchronize_session=False)
            )
    withheld = late_acks | late_triggers | told_twice
    waiting = _ends_behind_triggers_in_flight(
        session,
        [row for row in ends if row.id not in withheld and now - row.created_at < ttl],
        set(ids),
        now,
    )
    if waiting:
        session.execute(
            update(Notification)
            .where(Notification.id.in_(sorted(waiting)))
            .values(lease_holder=None, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )
    return [i for i in ids if i not in withheld and i not in waiting]


def _ends_behind_triggers_in_flight(
    session: Any, ends: Sequence[Any], claimed: set[int], now: datetime
) -> set[int]:
    """Of `ends` (rows telling a destination its episode ended), those whose destination has a
    triggering message of the same episode being sent: pending, leased until after `now`, and
    not among the rows just `claimed` (those are suppressed as late triggers instead).

    Read without locking: on PostgreSQL and MySQL/MariaDB (READ COMMITTED) a claim of the
    trigger that is not committed yet reads as the row unleased, so a RESOLVED claimed in those
    same milliseconds may still go first. Reading the rows locked closed that window but made
    four evaluators on one MariaDB deadlock on each other's claims."""
    from datamantri_alerts.services.signal.ack import triggers

    if not ends:
        return set()
    in_flight = session.execute(
        select(
            Notification.history_id,
            Notification.channel,
            Notification.recipient,
            Notification.payload,
        ).where(
            Notification.history_id.in_(sorted({row.history_id for row in ends})),
            Notification.status == "pending",
            Notification.lease_holder.is_not(None),
            Notification.lease_expires_at > now,
            Notification.id.not_in(sorted(claimed)),
        )
    ).all()
    busy = {
        (row.history_id, row.channel, row.recipient) for row in in_flight if triggers(row.payload)
    }
    return {row.id for row in ends if (row.history_id, row.channel, row.recipient) in busy}


def count_overdue(store: Store, now: datetime, after: timedelta = OVERDUE_AFTER) -> int:
    """How many notifications are still pending (undelivered) `after` their queueing or more."""
    from sqlalchemy import func

    with store.session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.status == "pending", Notification.created_at <= now - after)
            )
            or 0
        )


def record_results(
    store: Store,
    me: Holder,
    rows: Sequence[Claimed],
    results: Sequence[DeliveryResult],
    now: datetime,
    tally: DeliveryTally,
    policy_attempts: int,
    digests: Mapping[int, str] | None = None,
    *,
    defer_failures: bool = False,
) -> int:
    """Write a batch's outcomes on the rows and in their episodes, in one transaction.
    digests: row id -> the digest it went in (recorded with its history entry).
    `defer_failures`: a send that failed for good stays pending, due at once, for the next
    `alerts evaluate` to try with its own environment and retry policy (a command someone
    waits for: `services.send_now`), instead of being recorded as failed. Returns how
    many notifications the outcomes queued (an acknowledgement following its trigger). A
    transaction rolled back to break a deadlock is written again (`retry_write_conflicts`),
    the tally's counts of the failed try taken back first."""
    from dataclasses import replace

    from datamantri_alerts.store.engine import retry_write_conflicts

    saved = replace(tally, problems=list(tally.problems), tried=set(tally.tried))

    def undo() -> None:
        tally.sent, tally.failed = saved.sent, saved.failed
        tally.pending, tally.suppressed = saved.pending, saved.suppressed
        tally.problems[:] = saved.problems
        tally.tried.clear()
        tally.tried.update(saved.tried)

    return retry_write_conflicts(
        lambda: _record_results_once(
            store, me, rows, results, now, tally, policy_attempts, digests, defer_failures
        ),
        undo=undo,
    )


def _record_results_once(
    store: Store,
    me: Holder,
    rows: Sequence[Claimed],
    results: Sequence[DeliveryResult],
    now: datetime,
    tally: DeliveryTally,
    policy_attempts: int,
    digests: Mapping[int, str] | None = None,
    defer_failures: bool = False,
) -> int:
    with store.transaction() as session:
        held = still_held(session, Notification, [r.id for r in rows], me)
        updates: list[dict[str, Any]] = []
        entries: dict[int, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        for row, result in zip(rows, results, strict=True):
            if row.id not in held:
                # Our lease expired and another evaluator took the row over; it records it.
                tally.problems.append(f"notification {row.id}: lease lost before recording")
                continue
            tally.tried.add(row.id)
            attempts = row.attempts + result.attempts
            entry = {
                "notification_id": row.id,
                "at": now.isoformat(),
                "kind": row.kind,
                "channel": row.channel,
                "recipient": result.recipient_display,
                "attempts": result.attempts,
                "duration_ms": result.duration_ms,
            }
            if digests and row.id in digests:
                entry["digest"] = digests[row.id]
            values: dict[str, Any] = {
                "id": row.id,
                "attempts": attempts,
                "lease_holder": None,
                "lease_expires_at": None,
                "status": "pending",
                "last_error": result.error,
                "sent_at": None,
                "next_attempt_at": now,
            }
            if result.delivered:
                values.update(status="sent", sent_at=now, last_error=None)
                entry["status"] = "sent"
                tally.sent += 1
            elif result.retryable and now - row.created_at < MAX_AGE:
                runs = max(1, -(-attempts // max(1, policy_attempts)))
                values["next_attempt_at"] = now + later_retry_delay(runs, result.retry_after)
                entry.update(status="retrying", reason=result.error)
                entry["next_attempt_at"] = values["next_attempt_at"].isoformat()
                tally.pending += 1
            elif defer_failures:
                values["last_error"] = f"{result.error} (left to the next `alerts evaluate`)"
                entry.update(status="retrying", reason=values["last_error"])
                entry["next_attempt_at"] = now.isoformat()
                tally.pending += 1
            else:
                values["status"] = "failed"
                if result.retryable:
                    values["last_error"] = f"{result.error} (gave up: undelivered after 24 h)"
                entry.update(status="failed", reason=values["last_error"])
                tally.failed += 1
            updates.append(values)
            if row.history_id is not None:
                sent, errors = entries.setdefault(row.history_id, ([], []))
                (sent if result.delivered else errors).append(entry)
        if updates:
            session.execute(update(Notification), updates)
        if not entries:
            return 0
        _append_to_episodes(session, entries, now)
        return _acknowledgements_after_triggers(session, rows, results, held, now)


def _acknowledgements_after_triggers(
    session: Any,
    rows: Sequence[Claimed],
    results: Sequence[DeliveryResult],
    held: Any,
    now: datetime,
) -> int:
    """A trigger (a FIRING, say) just delivered for an episode acknowledged meanwhile is
    followed by its ACKNOWLEDGED to the same destination, when the channel takes it
    (`services.signal.ack.queue_after_triggers`): queued in this transaction, after the
    trigger, so an incident is never acknowledged before it was triggered."""
    from datamantri_alerts.services.signal.ack import queue_after_triggers

    delivered = [
        row
        for row, result in zip(rows, results, strict=True)
        if result.delivered and row.id in held
    ]
    return queue_after_triggers(session, delivered, now) if delivered else 0


def _append_to_episodes(
    session: Any,
    entries: dict[int, tuple[list[dict[str, Any]], list[dict[str, Any]]]],
    now: datetime,
) -> None:
    query = (
        select(
            AlertHistory.id,
            AlertHistory.notifications_sent,
            AlertHistory.notification_errors,
            AlertHistory.last_notified_at,
        )
        .where(AlertHistory.id.in_(sorted(entries)))
        .order_by(AlertHistory.id)
    )
    query = lock_rows(session, query)  # other evaluators append to the same lists
    changes = []
    for history_id, sent_list, error_list, last_notified in session.execute(query).all():
        sent, errors = entries[history_id]
        changes.append(
            {
                "id": history_id,
                "notifications_sent": [*(sent_list or []), *sent],
                "notification_errors": [*(error_list or []), *errors],
                "last_notified_at": now if sent else last_notified,
            }
        )
    if changes:
        session.execute(update(AlertHistory), changes)


def _attempts_per_run(policy: RetryPolicy | None, environ: Mapping[str, str] | None) -> int:
    """The attempts a send gets in one run: `policy`'s, else the environment's retry policy
    (`channels.retry.RetryPolicy.from_env`), else the default one when that cannot be read."""
    from datamantri_alerts.channels.retry import RetryPolicy

    try:
        return (policy or RetryPolicy.from_env(environ)).attempts
    except Exception:
        return RetryPolicy().attempts


def deliver_pending(
    store: Store,
    clock: Clock,
    me: Holder,
    *,
    concurrency: int = 16,
    batch_size: int = BATCH_SIZE,
    environ: Mapping[str, str] | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
    on_sent: Callable[[int], None] | None = None,
    lease_ttl: timedelta = LEASE_TTL,
    scope: Sequence[Any] = (),
    defer_failures: bool = False,
) -> DeliveryTally:
    """Send every pending notification that is due, batch by batch, until none is left.

    `scope`: extra SQL conditions on `Notification` limiting what is sent (`alerts ack` sends
    only its episode's ACKNOWLEDGED rows at once; the evaluator sends everything).
    `defer_failures`: what fails for good stays pending for the next `alerts evaluate`
    (`record_results`).

    Batches are claimed ahead of need: the next is claimed while the senders still work on the
    last rows of the previous one, so `concurrency` sends stay in flight across batches.
    The leases of the rows claimed and not recorded yet are renewed every
    `leases.RENEW_LEASES_AFTER` of `lease_ttl` (`leases.renew_held`): while this run is alive
    and its store takes the renewals, another evaluator does not claim and send again a row
    whose send takes longer than the lease (a slow service, retries, many rows for few
    senders). A run stopped by a signal gives its leases back (`evaluate._stop_cleanly`), and
    a send that finished but was not recorded yet is then made again by the next run.
    Each channel has its own `concurrency` senders, so a channel whose service stalls (sends
    held until their timeout) never holds up the other channels' sends. More than a threshold
    of a batch's rows for one destination go as a digest (`services.signal.digest`; InputError
    before anything is claimed when a threshold variable is not a number).
    """
    tally = DeliveryTally()
    digest_policy = DigestPolicy.from_env(environ)
    #: The retry policy's attempts, read when the first sends are recorded: a run with
    #: nothing to deliver does not load the channels.
    attempts_per_run: int | None = None
    seen: set[int] = set()
    slots = max(1, concurrency)
    renew_every = renew_interval(lease_ttl)
    renew_at = time.monotonic() + renew_every
    with ExitStack() as stack:
        pools: dict[str, ThreadPoolExecutor] = {}

        def pool_for(channel: str) -> ThreadPoolExecutor:
            if channel not in pools:
                pools[channel] = stack.enter_context(
                    ThreadPoolExecutor(max_workers=slots, thread_name_prefix=f"send-{channel}")
                )
                # Runs before the pool's own exit (which waits for its threads): after an
                # interrupt (SIGTERM, Ctrl-C) the claimed sends not yet started are dropped
                # (their leases are released for the next run) and only those in flight
                # finish. On a normal exit nothing is queued by then.
                stack.callback(pools[channel].shutdown, wait=False, cancel_futures=True)
            return pools[channel]

        futures: dict[Future[list[tuple[Claimed, DeliveryResult]]], Unit] = {}
        waiting: set[Future[list[tuple[Claimed, DeliveryResult]]]] = set()
        exhausted = False
        while True:
            # Claim the next batch as soon as no claimed row is left queued behind the busy
            # senders, so the senders never idle at a batch boundary.
            if not exhausted and len(waiting) <= slots:
                claimed = claim_pending(store, me, clock.now(), batch_size, lease_ttl, scope=scope)
                rows = [r for r in claimed if r.id not in seen]
                # A row this run already tried and left due at once (`defer_failures`) is
                # the next run's: given back, not left leased to this run until it expires.
                give_back(store, Notification, [r.id for r in claimed if r.id in seen], me)
                exhausted = not rows
                seen.update(r.id for r in rows)
                for unit in plan(rows, digest_policy):
                    future = pool_for(unit.rows[0].channel).submit(
                        send_unit, unit, environ=environ, policy=policy, sleep=sleep
                    )
                    futures[future] = unit
                    waiting.add(future)
            if not waiting:
                break
            # Record results as they come in (every RECORD_EVERY seconds at most), so a slow
            # or stalled send does not hold back the record of the ones already delivered:
            # a crash then repeats only the sends truly in flight.
            done, waiting = wait(
                waiting, timeout=max(0.0, renew_at - time.monotonic()), return_when=FIRST_COMPLETED
            )
            if time.monotonic() >= renew_at:
                held = [row.id for unit in futures.values() for row in unit.rows]
                renew_held(store, Notification, held, me=me, clock=clock, ttl=lease_ttl)
                renew_at = time.monotonic() + renew_every
            if not done:
                continue
            deadline = time.monotonic() + RECORD_EVERY
            while (
                waiting
                and (exhausted or len(waiting) > slots)
                and (left := deadline - time.monotonic()) > 0
            ):
                more, waiting = wait(waiting, timeout=left, return_when=FIRST_COMPLETED)
                done |= more
            units = [futures.pop(f) for f in done]
            pairs = [pair for f in done for pair in f.result()]
            finished = [row for row, _ in pairs]
            results = [result for _, result in pairs]
            digests = {row.id: u.digest_id for u in units if u.digest_id for row in u.rows}
            if attempts_per_run is None:
                attempts_per_run = _attempts_per_run(policy, environ)
            queued = record_results(
                store,
                me,
                finished,
                results,
                clock.now(),
                tally,
                attempts_per_run,
                digests,
                defer_failures=defer_failures,
            )
            if queued:
                exhausted = False  # an acknowledgement now follows its delivered trigger
            if on_sent is not None:
                on_sent(len(finished))
    return tally
