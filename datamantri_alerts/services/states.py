"""Alert states and episodes: what one evaluation outcome does to an alert.

    ok ──firing──▶ pending (until `pending_evaluations` in a row) ──▶ firing ──ok──▶ ok (RESOLVED)
    ok/pending ──error──▶ error (notified once per episode) ──ok──▶ ok (RESOLVED)
    firing (warning) ──firing (critical)──▶ firing (ESCALATED, the episode's severity raised)

With `confirm_recovery` (flap detection on, the default), a firing episode that has held for
fewer than `ESTABLISHED_FIRING_EVALUATIONS` evaluations in a row resolves on the second ok
evaluation in a row: the first keeps it open quietly (state firing, consecutive_hits 0), so a
condition flipping at every evaluation stays one episode. An established incident (firing on that
many evaluations in a row) resolves on its first ok evaluation: a real recovery is told at once.

A pure function of the alert's bookkeeping, the outcome and the time, so every rule is testable
without a store. An alert has at most one open episode (`current_episode_id`); an error while firing
keeps the firing episode open and sends nothing (whether the condition cleared is unknown), and a
firing outcome during an error episode closes the error episode and opens a firing one.

Escalation applies to types whose outcomes carry their own severity (`freshness`): a firing
outcome more severe than the open episode's severity is told once (`escalated`), and the episode
keeps the highest severity it reached; a lower one later is not told (it is not resolved).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

NotificationKind = Literal["firing", "repeat", "resolved", "error", "escalated"]

#: Severities from least to most severe.
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}

#: A firing streak this long is an established incident: its recovery needs no confirmation.
ESTABLISHED_FIRING_EVALUATIONS = 3


class AlertBook(NamedTuple):
    """The bookkeeping fields of an alert the state machine reads. A named tuple: immutable,
    as a frozen dataclass is, and built in less than half the time (the result writer builds
    one per alert evaluated)."""

    state: str
    consecutive_hits: int
    pending_evaluations: int
    repeat_interval_minutes: int
    notify_on_resolve: bool
    current_episode_id: int | None
    episode_kind: str | None  # firing | error, of the open episode
    last_notified_at: datetime | None
    #: Resolve a young firing episode only on the second ok evaluation in a row.
    confirm_recovery: bool = False
    #: When the alert was last evaluated (the first ok of a confirmed recovery).
    last_evaluated_at: datetime | None = None
    #: The open episode's severity (the highest it reached).
    episode_severity: str | None = None
    #: The open episode is acknowledged now (`services.signal.ack`): no REPEATs.
    acknowledged: bool = False


@dataclass
class Transition:
    state: str
    consecutive_hits: int
    #: "firing" or "error": open a new episode (after closing the current one, if any).
    open_episode: str | None = None
    #: Close the current episode (resolved_at = now).
    close_episode: bool = False
    #: Refresh the open episode's details.
    refresh_episode: bool = False
    #: Notifications to queue: "firing", "repeat", "resolved", "error" or "escalated".
    notify: list[NotificationKind] = field(default_factory=list)
    #: When the closed episode ended, if not now (a confirmed recovery: its first ok).
    resolved_at: datetime | None = None
    #: The open firing episode's severity rises to the outcome's (notified as "escalated").
    escalated: bool = False

    @property
    def resolved(self) -> bool:
        """The alert went back to ok (or pending) and its episode closed."""
        return self.close_episode and self.open_episode is None

    @property
    def triggered(self) -> bool:
        """A new firing episode: counts in trigger_count and last_triggered_at."""
        return self.open_episode == "firing"


def next_state(
    book: AlertBook, outcome: str, now: datetime, *, severity: str | None = None
) -> Transition:
    """The transition an outcome (`ok`, `firing` or `error`) makes from book at time now.

    `severity`: the outcome's own severity, for types that grade their outcomes (None for the
    others, whose severity is the alert's and cannot escalate).
    """
    open_kind = book.episode_kind if book.current_episode_id is not None else None
    if outcome == "ok":
        if (
            open_kind == "firing"
            and book.confirm_recovery
            and 0 < book.consecutive_hits < ESTABLISHED_FIRING_EVALUATIONS
        ):
            return Transition("firing", 0)
        if open_kind is not None:
            notify: list[NotificationKind] = ["resolved"] if book.notify_on_resolve else []
            confirmed = (
                open_kind == "firing" and book.confirm_recovery and book.consecutive_hits == 0
            )
            return Transition(
                "ok",
                0,
                close_episode=True,
                notify=notify,
                resolved_at=book.last_evaluated_at if confirmed else None,
            )
        return Transition("ok", 0)

    if outcome == "firing":
        hits = book.consecutive_hits + 1
        if open_kind == "firing":
            if _more_severe(severity, book.episode_severity):
                return Transition(
                    "firing", hits, refresh_episode=True, notify=["escalated"], escalated=True
                )
            notify = ["repeat"] if _repeat_due(book, now) else []
            return Transition("firing", hits, refresh_episode=True, notify=notify)
        if hits >= max(1, book.pending_evaluations):
            return Transition(
                "firing",
                hits,
                open_episode="firing",
                close_episode=open_kind is not None,
                notify=["firing"],
            )
        # Not yet: the condition must hold on `pending_evaluations` evaluations in a row.
        return Transition("pending", hits, close_episode=open_kind is not None)

    # error: could not evaluate
    if open_kind == "firing":
        return Transition("firing", book.consecutive_hits, refresh_episode=True)
    if open_kind == "error":
        return Transition("error", 0, refresh_episode=True)
    return Transition("error", 0, open_episode="error", notify=["error"])


def _more_severe(severity: str | None, than: str | None) -> bool:
    if severity is None or than is None:
        return False
    return SEVERITY_RANK.get(severity, 0) > SEVERITY_RANK.get(than, 0)


def _repeat_due(book: AlertBook, now: datetime) -> bool:
    if book.acknowledged or book.repeat_interval_minutes <= 0:
        return False
    if book.last_notified_at is None:
        return True
    return now - book.last_notified_at >= timedelta(minutes=book.repeat_interval_minutes)
