"""An episode's end reaches every incident it opened.

A destination whose channel keeps incident state (`Channel.tracks_incidents`: PagerDuty,
webhooks of either format; "a tracker") holds an incident open from the triggering message it was
sent until it is sent a RESOLVED. However the episode closed, the tracker must be told, or the
incident stays open for ever and the on-call is never told it cleared:

* the evaluator closing it while a mute, maintenance window or silence holds its messages back
  (those are about not disturbing people, and a RESOLVED only makes a tracker quieter);
* an alert with `notify_on_resolve: false` (people are not told; its incidents still close);
* `alerts history resolve` closing it by hand (which queued nothing at all before);
* the alert disabled or deleted (`services.alerts.stand_down`; people are told nothing then).

`queue_resolved` is called in the transaction that closes episodes, after the evaluator queued
its own messages. For each destination of a closed episode that was sent a triggering message
(or has one still pending: it may yet go out), it makes sure a RESOLVED is to be sent: one held
back (suppressed, or cancelled by a disable) is released for a tracker, a missing one is queued,
built from the triggering message (the same alert, labels, host; `outbox` key
`<episode>:resolved::<channel>:<recipient hash>`, the one the evaluator uses, so it is never
queued twice). People's channels keep their rules: they get
the evaluator's RESOLVED when the alert notifies on resolve and nothing holds it; closed by hand,
they get a RESOLVED only when the alert has `notify_on_resolve` and they were sent its FIRING.

The other half, in `services.delivery`: a triggering message (FIRING, REPEAT, ESCALATED,
FLAPPING, could-not-evaluate) of a resolved episode is never sent to a destination that has a
RESOLVED of that episode queued or sent (`RESOLVED_FIRST`): a FIRING retried after a 429 would
otherwise re-open, after its RESOLVED, an incident nothing would close again; and a destination
hears an episode's end once (`RESOLVED_ONCE`): a flap settling as RESOLVED after the episode's
RESOLVED was queued (by the evaluator or here) is not sent to it again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from datamantri_alerts.store.models import Alert, AlertHistory, Notification

RESOLVED_KIND = "resolved"
#: Why a triggering message is not sent once its destination has the episode's RESOLVED.
RESOLVED_FIRST = "episode resolved before this message was sent"
#: Why a second message of an episode's end is not sent to a destination already told it.
RESOLVED_ONCE = "the episode's end was already queued or sent to this destination"
#: Trigger rows that may have opened an incident (sent) or still may (pending).
_MAY_HAVE_OPENED = ("sent", "pending")
#: A RESOLVED a tracker was not sent because something held it back (a mute, window or
#: silence: suppressed; the alert disabled or deleted: cancelled); released for trackers.
_HELD_BACK = ("suppressed", "cancelled")


def queue_resolved(
    session: Session,
    episode_ids: Sequence[int],
    now: datetime,
    *,
    by_hand: bool = False,
    note: str = "",
    stood_down: bool = False,
) -> int:
    """Make sure every tracker told of the closed episodes gets their RESOLVED (see the module
    docstring); `by_hand` (`alerts history resolve`, with its `note`) also tells people's
    channels that were sent the FIRING when the alert notifies on resolve; `stood_down` (the
    alert disabled or deleted, `services.alerts.stand_down`) also counts triggers it has just
    cancelled. Returns how many RESOLVED rows were queued or released."""
    from datamantri_alerts.services.outbox import insert_rows, outbox_row
    from datamantri_alerts.services.signal.ack import triggers

    ids = sorted(set(episode_ids))
    if not ids:
        return 0
    # Standing an alert down has just cancelled its pending messages: a FIRING cancelled while
    # it was being retried may have reached the tracker (a try that timed out), so it counts.
    opened = (*_MAY_HAVE_OPENED, "cancelled") if stood_down else _MAY_HAVE_OPENED
    rows = episode_messages(session, ids)
    triggered: dict[tuple[int, str, str], tuple[str, Mapping[str, Any]]] = {}
    resolved: dict[tuple[int, str, str], tuple[int, str]] = {}
    for row_id, episode_id, channel, recipient, kind, status, payload in rows:
        # By the message's state, not the row's kind: a flap that settles is kind `flapping`
        # with state RESOLVED.
        key = (episode_id, channel, recipient)
        if is_resolved(kind, payload):
            resolved.setdefault(key, (row_id, status))
        elif triggers(payload) and status in opened and key not in triggered:
            triggered[key] = (status, payload)
    if not triggered:
        return 0
    people_told = _notify_on_resolve(session, ids) if by_hand else set()
    episodes = {
        e.id: e for e in session.scalars(select(AlertHistory).where(AlertHistory.id.in_(ids)))
    }
    release: list[int] = []
    queue: list[dict[str, Any]] = []
    for (episode_id, channel, recipient), (status, payload) in triggered.items():
        tracker = tracks_incidents(channel)
        if not tracker and not (episode_id in people_told and status == "sent"):
            continue
        existing = resolved.get((episode_id, channel, recipient))
        if existing is not None:
            row_id, existing_status = existing
            if existing_status in _HELD_BACK and tracker:
                release.append(row_id)
            continue
        queue.append(
            outbox_row(
                alert_id=episodes[episode_id].alert_id,
                episode_id=episode_id,
                kind=RESOLVED_KIND,
                stamp="",
                channel=channel,
                recipient=recipient,
                payload=resolved_payload(payload, episodes[episode_id], now, by_hand, note),
                now=now,
            )
        )
    if release:
        session.execute(
            update(Notification)
            .where(Notification.id.in_(release), Notification.status == "suppressed")
            .values(status="pending", last_error=None, next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
    insert_rows(session, queue)
    return len(release) + len(queue)


def episode_messages(
    session: Session, episode_ids: Sequence[int], statuses: Sequence[str] = ()
) -> list[Any]:
    """The episodes' outbox rows other than acknowledgements, oldest first, as (id, history_id,
    channel, recipient, kind, status, payload); only those in `statuses` when given."""
    from datamantri_alerts.services.signal.ack import ACK_KIND

    query = select(
        Notification.id,
        Notification.history_id,
        Notification.channel,
        Notification.recipient,
        Notification.kind,
        Notification.status,
        Notification.payload,
    ).where(Notification.history_id.in_(episode_ids), Notification.kind != ACK_KIND)
    if statuses:
        query = query.where(Notification.status.in_(list(statuses)))
    return list(session.execute(query.order_by(Notification.id)).all())


def tracks_incidents(channel: str) -> bool:
    """Whether a channel's recipients keep incident state (`Channel.tracks_incidents`); an
    unknown channel does not."""
    from datamantri_alerts.channels import get_channel

    try:
        return bool(get_channel(channel).tracks_incidents)
    except KeyError:
        return False


def is_resolved(kind: str, payload: Mapping[str, Any]) -> bool:
    """Whether an outbox row tells its episode's end (a RESOLVED, or a flap settling as one)."""
    return kind == RESOLVED_KIND or (
        isinstance(payload, Mapping) and payload.get("state") == "RESOLVED"
    )


def resolved_payload(
    sent: Mapping[str, Any], episode: AlertHistory, now: datetime, by_hand: bool, note: str
) -> dict[str, Any]:
    """The RESOLVED message (outbox JSON) of episode, built from a triggering message its
    destination was sent (same alert, labels, host, episode start), at `now`."""
    from datamantri_alerts.channels.base import Message

    message = Message.model_validate(sent)
    if by_hand:
        summary = f"resolved by hand: {note}" if note else "resolved by hand"
        details: dict[str, Any] = {"resolved_by": "hand", **({"note": note} if note else {})}
    else:
        summary, details = "the condition cleared", {}
    return message.model_copy(
        update={
            "state": "RESOLVED",
            "at": now,
            "summary": summary,
            "details": details,
            "severity": episode.severity or message.severity,
            "episode_id": episode.id,
            "triggered_at": episode.triggered_at,
        }
    ).model_dump(mode="json")


def _notify_on_resolve(session: Session, episode_ids: Sequence[int]) -> set[int]:
    """The episodes whose alert notifies people on resolve."""
    return set(
        session.scalars(
            select(AlertHistory.id)
            .join(Alert, Alert.id == AlertHistory.alert_id)
            .where(AlertHistory.id.in_(episode_ids), Alert.notify_on_resolve.is_(True))
        )
    )
