"""A batch's check results written in one transaction: states, episodes, outbox, leases.

`apply_results` is the evaluator's one decision point for what a result changes: the alert's
next state (`services.states`), flapping (`services.signal.flapping`), the episode opened,
refreshed or closed, and what is queued to tell whom (`services.outbox`), held back by mutes,
silences and maintenance windows (`services.signal.hold`). The run calls it on its result
writer's thread (`services.result_writer`) for every batch of results, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import bindparam, func, insert, select, type_coerce
from sqlalchemy.engine import Dialect

from datamantri_alerts.services.due import check_interval, next_due_after
from datamantri_alerts.services.leases import (
    Holder,
    lock_rows,
)
from datamantri_alerts.services.mute import release_after_mute
from datamantri_alerts.services.outbox import Event, enqueue, message_payload
from datamantri_alerts.services.run_summary import AlertResult, RunSummary
from datamantri_alerts.services.signal import flapping
from datamantri_alerts.services.signal.ack import (
    RESOLVED_FIRST,
    is_acknowledged,
    withdraw_pending,
)
from datamantri_alerts.services.signal.closing import queue_resolved
from datamantri_alerts.services.signal.hold import Signals, hold_reason
from datamantri_alerts.services.states import AlertBook, Transition, next_state
from datamantri_alerts.store.by_id import update_by_id
from datamantri_alerts.store.models import Alert, AlertHistory
from datamantri_alerts.store.types import PortableJSON

if TYPE_CHECKING:
    from datamantri_alerts.services.checking import CheckResult
    from datamantri_alerts.store.engine import Store


#: `check_interval` of a condition configuration that does not set it.
_DEFAULT_INTERVAL = check_interval(None)


class _CheckIntervalOf(PortableJSON):
    """Read as `check_interval` of the `condition_config` read: the one thing the result writer
    needs of it. JSON text (SQLite, MySQL/MariaDB) of an object in which neither
    `check_interval_minutes` nor an escape occurs has no such key, so the default interval,
    and is not decoded; anything else (PostgreSQL's JSONB comes decoded by the driver) is
    decoded as the column's type does, then given to `check_interval`."""

    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> timedelta:
        return check_interval(value)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any]:
        general = super().result_processor(dialect, coltype)
        assert general is not None  # process_result_value is this type's own

        def process(value: Any) -> Any:
            if (
                type(value) is str
                and value.startswith("{")
                and "check_interval_minutes" not in value
                and "\\" not in value
            ):
                return _DEFAULT_INTERVAL
            return general(value)

        return process


class _NullableJSON(PortableJSON):
    """The column's JSON as its type reads it, JSON `null` text (an unset `flap_detection`,
    most alerts') read as None without a `json.loads`."""

    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        general = super().result_processor(dialect, coltype)
        if general is None:  # decoded by the driver (PostgreSQL)
            return None

        def process(value: Any) -> Any:
            return None if value == "null" else general(value)

        return process


#: What deciding an alert's next state and writing its result read of it
#: (`_apply_results_once`), as rows (Core, not ORM objects; kept as `AlertState`): no other
#: column is decoded (the check's last summary and details, written here, are never read), and
#: reading one that is not listed fails instead of loading it. Of `condition_config` only its
#: interval is read (`check_interval`, `_CheckIntervalOf`).
_STATE_COLUMNS = (
    Alert.__table__.c.id,
    Alert.__table__.c.name,
    Alert.__table__.c.condition_type,
    type_coerce(Alert.__table__.c.condition_config, _CheckIntervalOf()).label("check_interval"),
    type_coerce(Alert.__table__.c.flap_detection, _NullableJSON()).label("flap_detection"),
    *(
        Alert.__table__.c[name]
        for name in (
            "state",
            "consecutive_hits",
            "pending_evaluations",
            "repeat_interval_minutes",
            "notify_on_resolve",
            "last_evaluated_at",
            "last_notified_at",
            "trigger_count",
            "flap_history",
            "flapping",
            "current_episode_id",
        )
    ),
)


class AlertState(NamedTuple):
    """An alert's `_STATE_COLUMNS` as read, in their order. A named tuple, not SQLAlchemy's
    row: the writer reads about forty of these attributes per alert, and a row's attribute
    costs about ten times as much to read (SQLAlchemy 2.1 first looks the name up on the row's
    class, a failed lookup that raises and swallows an AttributeError each time)."""

    id: int
    name: str
    condition_type: str
    check_interval: timedelta
    flap_detection: dict[str, Any] | None
    state: str
    consecutive_hits: int
    pending_evaluations: int
    repeat_interval_minutes: int
    notify_on_resolve: bool
    last_evaluated_at: datetime | None
    last_notified_at: datetime | None
    trigger_count: int
    flap_history: str | None
    flapping: bool
    current_episode_id: int | None


#: What telling about an alert reads of it: the hold rules of `services.signal.hold` and the
#: message and destinations of `_alert_event`; read only for the alerts of a batch that may
#: have something to tell (`_telling`).
_MESSAGE_COLUMNS = tuple(
    Alert.__table__.c[name]
    for name in (
        "id",
        "name",
        "description",
        "condition_type",
        "labels",
        "mute_during",
        "muted_until",
        "mute_reason",
        "channels",
        "recipients",
    )
)


class AlertMessage(NamedTuple):
    """An alert's `_MESSAGE_COLUMNS` as read, in their order (read by attribute for each
    message and hold rule: a named tuple for the reason of `AlertState`)."""

    id: int
    name: str
    description: str
    condition_type: str
    labels: dict[str, Any] | None
    mute_during: list[str] | None
    muted_until: datetime | None
    mute_reason: str | None
    channels: list[str]
    recipients: dict[str, Any]


_ALERTS = Alert.__table__.c
_HISTORY = AlertHistory.__table__.c

# The writer's reads, built once (their structure is constant; ids and holder are bound at each
# batch): building a statement and its cache key costs more than its execution's own steps
# (the state read over 500 ids: ≈ 0.45 ms a batch).
#: The alerts' state rows still leased to the writer (`ids`, `holder`), in id order.
_STATE_QUERY = (
    select(*_STATE_COLUMNS)
    .where(
        _ALERTS.id.in_(bindparam("ids", expanding=True)),
        _ALERTS.lease_holder == bindparam("holder"),
    )
    .order_by(_ALERTS.id)
)
#: The message rows of the alerts `ids`.
_MESSAGE_QUERY = select(*_MESSAGE_COLUMNS).where(_ALERTS.id.in_(bindparam("ids", expanding=True)))
#: The open episodes among `ids` (Core: rows, no ORM loading).
_OPEN_EPISODES_QUERY = select(
    _HISTORY.id,
    _HISTORY.kind,
    _HISTORY.triggered_at,
    _HISTORY.severity,
    _HISTORY.acknowledged_at,
    _HISTORY.ack_until,
).where(_HISTORY.id.in_(bindparam("ids", expanding=True)), _HISTORY.resolved_at.is_(None))
#: The flips of the episodes `ids`.
_FLIPS_QUERY = select(_HISTORY.id, _HISTORY.flips).where(
    _HISTORY.id.in_(bindparam("ids", expanding=True))
)


def apply_results(
    store: Store,
    now: datetime,
    me: Holder,
    host: str,
    results: Sequence[CheckResult],
    summary: RunSummary,
    *,
    started: Mapping[int, datetime] | None = None,
) -> None:
    """Write a batch's outcomes in one transaction: states, episodes, outbox, leases released.

    `now` is when the results are written; `started` maps alert ids to when their checks began
    (default `now`), which decides their next grid point (`services.due.next_due_after`).
    A transaction the store rolled back to break a deadlock (concurrent runs on MariaDB) is
    written again, the summary's counts of the failed try taken back first; a write that fails
    for good takes its counts back before the error goes on (the run's record counts only what
    was written).
    """
    from datamantri_alerts.store.engine import retry_write_conflicts

    mark = summary.mark()
    try:
        retry_write_conflicts(
            lambda: _apply_results_once(store, now, me, host, results, summary, started=started),
            undo=lambda: summary.rewind(mark),
        )
    except BaseException:
        summary.rewind(mark)  # nothing of the failed transaction was written: nor is it counted
        raise


def _apply_results_once(
    store: Store,
    now: datetime,
    me: Holder,
    host: str,
    results: Sequence[CheckResult],
    summary: RunSummary,
    *,
    started: Mapping[int, datetime] | None = None,
) -> None:
    from datamantri_alerts.secrets import environment_read_once

    started = started or {}
    by_id = {r.id: r for r in results if r.id is not None}
    # The environment's secrets are read once for the batch's redaction, not per value written
    # (secrets registered meanwhile still count).
    with store.transaction() as session, environment_read_once():
        read = session.execute(
            lock_rows(session, _STATE_QUERY), {"ids": list(by_id), "holder": me.id}
        )
        alerts = [AlertState._make(row) for row in read]
        lost = set(by_id) - {a.id for a in alerts}
        if lost:
            # An alert disabled or deleted meanwhile gave up its lease (`stand_down`): its result
            # is dropped on purpose. Any other lost lease is a problem worth a line.
            watched = select(Alert.id).where(Alert.id.in_(lost), Alert.is_active.is_(True))
            lost = set(session.scalars(watched))
        for alert_id in sorted(lost):
            summary.problems.append(f"alert {alert_id}: lease lost before its result was written")
        episodes = _open_episodes(session, alerts)

        plans: list[tuple[AlertState, CheckResult, Transition]] = []
        #: alert id -> (updated outcome history, flap verdict)
        flaps: dict[int, tuple[str, flapping.Verdict]] = {}
        #: (history, was flapping) -> verdict under the default settings (most alerts'): a
        #: verdict is a pure function of them, and immutable, so alerts alike share one.
        default_verdicts: dict[tuple[str, bool], flapping.Verdict] = {}
        for alert in alerts:  # in id order
            result = by_id[alert.id]
            episode = episodes.get(alert.current_episode_id or -1)
            flap = flapping.settings(alert.flap_detection)
            history = flapping.record(alert.flap_history or "", result.outcome, flap.window)
            was_flapping = bool(alert.flapping)
            if flap is flapping.DEFAULTS:
                verdict = default_verdicts.get((history, was_flapping))
                if verdict is None:
                    verdict = flapping.assess(history, was_flapping, flap)
                    default_verdicts[history, was_flapping] = verdict
            else:
                verdict = flapping.assess(history, was_flapping, flap)
            flaps[alert.id] = (history, verdict)
            book = AlertBook(
                state=alert.state,
                consecutive_hits=alert.consecutive_hits or 0,
                pending_evaluations=alert.pending_evaluations or 1,
                repeat_interval_minutes=alert.repeat_interval_minutes,
                notify_on_resolve=alert.notify_on_resolve,
                current_episode_id=alert.current_episode_id if episode else None,
                episode_kind=episode[0] if episode else None,
                last_notified_at=alert.last_notified_at,
                confirm_recovery=flap.enabled,
                last_evaluated_at=alert.last_evaluated_at,
                episode_severity=episode[2] if episode else None,
                acknowledged=bool(episode and is_acknowledged(episode[3], episode[4], now)),
            )
            graded = (
                result.severity
                if result.severity_from_outcome and result.outcome == "firing"
                else None
            )
            plans.append((alert, result, next_state(book, result.outcome, now, severity=graded)))

        # The hold rules and the message columns, of the alerts that may have something to tell.
        telling = [a.id for a, r, t in plans if _telling(a, r, t, flaps[a.id][1], episodes)]
        messages: dict[int, AlertMessage] = {}
        signals = Signals()
        if telling:
            read = session.execute(_MESSAGE_QUERY, {"ids": telling})
            messages = {row[0]: AlertMessage._make(row) for row in read}
            signals = Signals.load(session, now)

        # Close and refresh existing episodes.
        closing = [
            {"id": a.current_episode_id, "resolved_at": t.resolved_at or now}
            for a, _, t in plans
            if t.close_episode and a.current_episode_id in episodes
        ]
        if closing:
            update_by_id(
                session,
                AlertHistory.__table__,
                [{"_id": row["id"], "resolved_at": row["resolved_at"]} for row in closing],
            )
            # Nothing is sent for an episode after its RESOLVED: an acknowledgement still
            # waiting (a 429, say) is withdrawn with it (delivery also refuses it).
            withdraw_pending(session, [row["id"] for row in closing], RESOLVED_FIRST)
        refreshing = [
            {
                "_id": a.current_episode_id,
                "summary": r.summary,
                "details": r.details,
                # An escalated episode keeps the highest severity it reached.
                "severity": r.severity if t.escalated else episodes[a.current_episode_id][2],
            }
            for a, r, t in plans
            if t.refresh_episode and a.current_episode_id in episodes
        ]
        update_by_id(session, AlertHistory.__table__, refreshing)
        _record_flips(session, now, plans, flaps, episodes)

        # Open new episodes (ids back in input order).
        opening = [(a, r, t) for a, r, t in plans if t.open_episode]
        new_ids: dict[int, int] = {}
        if opening:
            rows = [
                {
                    "alert_id": a.id,
                    "alert_name": a.name,
                    "triggered_at": now,
                    "condition_met": t.open_episode == "firing",
                    "kind": t.open_episode,
                    "severity": r.severity,
                    "summary": r.summary,
                    "details": r.details,
                    "notifications_sent": [],
                    "notification_errors": [],
                }
                for a, r, t in opening
            ]
            # Mapped back by alert_id (one new episode per alert per evaluation): ordered
            # RETURNING would make SQLite insert row by row.
            returned = session.execute(
                insert(AlertHistory).returning(AlertHistory.id, AlertHistory.alert_id), rows
            ).all()
            new_ids = {alert_id: history_id for history_id, alert_id in returned}

        # Queue notifications and build the alert updates.
        events: list[Event] = []
        alert_updates: list[dict[str, Any]] = []
        #: (check start, interval) -> next due time: a pure function of the two, and a batch's
        #: alerts share one start (their claim) and mostly one interval.
        due_after: dict[tuple[datetime, timedelta], datetime] = {}
        for alert, result, transition in plans:
            old_episode = alert.current_episode_id if alert.current_episode_id in episodes else None
            old_triggered_at = episodes[old_episode][1] if old_episode is not None else None
            old_severity = episodes[old_episode][2] if old_episode is not None else None
            if alert.id in new_ids:
                episode_id: int | None = new_ids[alert.id]
                triggered_at = now
            elif transition.close_episode:
                episode_id, triggered_at = None, None
            else:
                episode_id, triggered_at = old_episode, old_triggered_at
            history, verdict = flaps[alert.id]
            message = messages.get(alert.id)  # None: nothing to tell (`_telling`)
            outside = None if message is None else hold_reason(message, now, signals)
            reason = outside or (verdict.notice() if verdict.flapping else None)
            notified = False
            for kind in transition.notify:
                target = old_episode if kind == "resolved" else episode_id
                if target is None:
                    continue
                severity = result.severity
                if kind == "resolved" and result.severity_from_outcome and old_severity:
                    severity = old_severity  # what was resolved, not the ok outcome's
                events.append(
                    _alert_event(
                        messages[alert.id],
                        result,
                        kind,
                        target,
                        host=host,
                        now=now,
                        severity=severity,
                        triggered_at=old_triggered_at if kind == "resolved" else triggered_at,
                        escalated_from=old_severity if kind == "escalated" else None,
                        suppressed=reason,
                    )
                )
                notified = notified or kind != "resolved"
            if (
                reason is None
                and old_episode is not None
                and episode_id == old_episode
                and result.outcome != "ok"  # a recovery being confirmed: nothing new to tell
            ):
                events.append(
                    _opening_for_new_destinations(
                        messages[alert.id], old_episode, result, host, now, episodes
                    )
                )
            if verdict.started:
                target = episode_id or old_episode or _latest_episode(session, alert.id)
                events.append(
                    _flap_event(
                        session,
                        messages[alert.id],
                        result,
                        host,
                        now,
                        target,
                        verdict.notice(),
                        outside,
                    )
                )
            grid = (started.get(alert.id, now), alert.check_interval)
            next_due = due_after.get(grid)
            if next_due is None:
                next_due = due_after[grid] = next_due_after(*grid)
            alert_updates.append(
                _alert_update(
                    alert,
                    result,
                    transition,
                    now=now,
                    next_due=next_due,
                    episode_id=episode_id,
                    notified=notified,
                    history=history,
                    flapping=verdict.flapping,
                )
            )
            summary.results.append(
                AlertResult(
                    id=alert.id,
                    name=alert.name,
                    condition_type=alert.condition_type,
                    outcome=result.outcome,
                    state=transition.state,
                    severity=result.severity,
                    summary=result.summary,
                    duration_ms=result.duration_ms,
                )
            )
            summary.firing += transition.state == "firing"
            summary.resolved += transition.resolved
            summary.errors += result.outcome == "error"
        queued = enqueue(session, events, now)
        summary.suppressed += sum(1 for row in queued if row["status"] == "suppressed")
        update_by_id(session, Alert.__table__, alert_updates, nulls=_LEASE_GIVEN_UP)
        settled = _settle_flapping(session, now, host, plans, flaps, signals, messages)
        queued = enqueue(session, settled, now)
        summary.suppressed += sum(1 for row in queued if row["status"] == "suppressed")
        if closing:
            # A tracker's incident closes whatever held people's messages back, and also for
            # an alert that does not notify on resolve (services.signal.closing).
            queue_resolved(session, [row["id"] for row in closing], now)


#: The columns every alert update sets to NULL: the lease given up (`update_by_id`'s `nulls`).
_LEASE_GIVEN_UP = ("lease_holder", "lease_expires_at")


def _alert_update(
    alert: AlertState,
    result: CheckResult,
    transition: Transition,
    *,
    now: datetime,
    next_due: datetime,
    episode_id: int | None,
    notified: bool,
    history: str,
    flapping: bool,
) -> dict[str, Any]:
    """The parameters of the UPDATE writing `result` to `alert` (`_id` its key): what every
    evaluation writes (summary, details, times; the lease given up is `_LEASE_GIVEN_UP`, set
    to NULL by the statement itself), and of the other bookkeeping
    only what changes from the values read in this transaction, under the row's lock (a column
    written with the value it holds is left out: the same row either way)."""
    values: dict[str, Any] = {
        "_id": alert.id,
        "last_summary": result.summary,
        "last_details": result.details,
        "last_evaluated_at": now,
        "next_due_at": next_due,
    }
    trigger_count = (alert.trigger_count or 0) + (1 if transition.triggered else 0)
    if transition.state != alert.state:
        values["state"] = transition.state
    if transition.consecutive_hits != alert.consecutive_hits:
        values["consecutive_hits"] = transition.consecutive_hits
    if episode_id != alert.current_episode_id:
        values["current_episode_id"] = episode_id
    if trigger_count != alert.trigger_count:
        values["trigger_count"] = trigger_count
    if history != alert.flap_history:
        values["flap_history"] = history
    if flapping != alert.flapping:
        values["flapping"] = flapping
    if transition.triggered:
        values["last_triggered_at"] = now
    if notified:
        values["last_notified_at"] = now
    if result.check_state is not None:  # None: the check keeps what is stored
        values["check_state"] = result.check_state
    return values


def _telling(
    alert: AlertState,
    result: CheckResult,
    transition: Transition,
    verdict: flapping.Verdict,
    episodes: Mapping[int, Any],
) -> bool:
    """Whether writing `result` may queue a message about `alert`: a notification of the
    transition, the opening message of its still-open episode for new destinations, a flap
    starting or stopping. Only these alerts' hold rules and messages are read."""
    return bool(
        transition.notify
        or verdict.started
        or verdict.stopped
        or (alert.current_episode_id in episodes and result.outcome != "ok")
    )


#: At most this many flips are kept per episode (the newest).
MAX_FLIPS = 500


def _record_flips(
    session: Any,
    now: datetime,
    plans: Sequence[tuple[AlertState, CheckResult, Transition]],
    flaps: Mapping[int, tuple[str, flapping.Verdict]],
    episodes: Mapping[int, Any],
) -> None:
    """Append each change of outcome inside an open episode that stays open to its `flips`,
    so every flip is in the history even when it is not an episode of its own."""
    flipped = {
        a.current_episode_id: r.outcome
        for a, r, t in plans
        if a.current_episode_id in episodes
        and not t.close_episode
        and len(history := flaps[a.id][0]) >= 2
        and history[-1] != history[-2]
        and r.outcome in flapping.OUTCOME_MARKS
    }
    if not flipped:
        return
    rows = session.execute(_FLIPS_QUERY, {"ids": list(flipped)}).all()
    stamp = now.isoformat()
    update_by_id(
        session,
        AlertHistory.__table__,
        [
            {
                "_id": episode_id,
                "flips": [*(flips or []), {"at": stamp, "outcome": flipped[episode_id]}][
                    -MAX_FLIPS:
                ],
            }
            for episode_id, flips in rows
        ],
    )


def _latest_episode(session: Any, alert_id: int) -> int | None:
    return session.scalar(
        select(func.max(AlertHistory.id)).where(AlertHistory.alert_id == alert_id)
    )


def _flap_event(
    session: Any,
    alert: AlertMessage,
    result: CheckResult,
    host: str,
    now: datetime,
    episode_id: int | None,
    summary: str,
    suppressed: str | None,
    state: str | None = None,
) -> Event:
    """A flap notice (`kind` flapping): FLAPPING when it starts, `state` when it settles. It
    carries its episode's `triggered_at`, as every message of an episode does (PagerDuty's
    dedup_key is built from it)."""
    target = episode_id or 0
    triggered_at = (
        session.scalar(select(AlertHistory.triggered_at).where(AlertHistory.id == target))
        if target
        else None
    )
    return _alert_event(
        alert,
        result,
        "flapping",
        target,
        host=host,
        now=now,
        severity=result.severity,
        triggered_at=triggered_at,
        suppressed=suppressed,
        summary=summary,
        state=state,
    )


def _settle_flapping(
    session: Any,
    now: datetime,
    host: str,
    plans: Sequence[tuple[AlertState, CheckResult, Transition]],
    flaps: Mapping[int, tuple[str, flapping.Verdict]],
    signals: Signals,
    messages: Mapping[int, AlertMessage],
) -> list[Event]:
    """One notification for each alert that stopped flapping (and nothing else holds): what
    flapping held back and the user is owed, as at the end of a mute (`release_after_mute`),
    or else a line saying where it settled (firing or resolved). `messages`: the alerts'
    `_MESSAGE_COLUMNS`."""
    events: list[Event] = []
    for state, result, transition in plans:
        verdict = flaps[state.id][1]
        if not verdict.stopped:
            continue
        alert = messages[state.id]
        if hold_reason(alert, now, signals) is not None:
            continue
        if release_after_mute(session, now, only=[alert.id]):
            continue
        firing = transition.state == "firing"
        where = "firing" if firing else "resolved"
        events.append(
            _flap_event(
                session,
                alert,
                result,
                host,
                now,
                session.scalar(select(Alert.current_episode_id).where(Alert.id == alert.id))
                or _latest_episode(session, alert.id),
                f"flapping stopped; settled {where}: {result.summary}",
                None,
                state="FIRING" if firing else "RESOLVED",
            )
        )
    return events


def _opening_for_new_destinations(
    alert: AlertMessage,
    episode_id: int,
    result: CheckResult,
    host: str,
    now: datetime,
    episodes: Mapping[int, tuple[str, datetime, str, datetime | None, datetime | None]],
) -> Event:
    """The opening message (FIRING, or could-not-evaluate) of the alert's still-open episode,
    for its current channels and recipients.

    Queued at every evaluation that keeps the episode open and is not held (mute, window,
    silence, flapping): the outbox's dedup key (episode, kind, channel, recipient) makes it a
    no-op for every destination already told, so only a destination added while the episode
    was open (`alerts edit`, `sync` changing channels or recipients) gets it, once, as
    Alertmanager tells a new receiver of the alerts still firing."""
    kind, triggered_at, severity, _, _ = episodes[episode_id]
    return _alert_event(
        alert,
        result,
        kind,
        episode_id,
        host=host,
        now=now,
        severity=severity,
        triggered_at=triggered_at,
    )


def _alert_event(
    alert: AlertMessage,
    result: CheckResult,
    kind: str,
    episode_id: int,
    *,
    host: str,
    now: datetime,
    severity: str,
    triggered_at: datetime | None,
    escalated_from: str | None = None,
    suppressed: str | None = None,
    summary: str | None = None,
    state: str | None = None,
) -> Event:
    """The outbox event announcing `kind` of the alert's episode, for its current channels
    and recipients, with the check result's details and its summary (or `summary`); `state`
    overrides the kind's message state (`outbox.message_payload`)."""
    return Event(
        alert_id=alert.id,
        episode_id=episode_id,
        kind=kind,
        message=partial(
            message_payload,
            alert=alert,
            kind=kind,
            at=now,
            summary=result.summary if summary is None else summary,
            details=result.details,
            severity=severity,
            host=host,
            episode_id=episode_id,
            triggered_at=triggered_at,
            state=state,
            escalated_from=escalated_from,
        ),
        channels=list(alert.channels or []),
        recipients=dict(alert.recipients or {}),
        suppressed=suppressed,
    )


def _open_episodes(
    session: Any, alerts: Sequence[AlertState]
) -> dict[int, tuple[str, datetime, str, datetime | None, datetime | None]]:
    """id -> (kind, triggered_at, severity, acknowledged_at, ack_until) of the alerts' open
    episodes."""
    ids = [a.current_episode_id for a in alerts if a.current_episode_id is not None]
    if not ids:
        return {}
    rows = session.execute(_OPEN_EPISODES_QUERY, {"ids": ids})
    return {
        episode_id: (kind, triggered_at, severity, acknowledged_at, ack_until)
        for episode_id, kind, triggered_at, severity, acknowledged_at, ack_until in rows
    }
