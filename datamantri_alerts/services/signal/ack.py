"""Acknowledgement: someone is on it, so an episode's REPEATs stop.

`alerts ack REF|EPISODE_ID [--note TEXT] [--for DURATION]` marks the alert's open episode (or
the episode given by id) acknowledged: who (`ALERTS_USER`, else the OS login name), when, an
optional note and, with `--for`, until when. While acknowledged, the state machine queues no
REPEAT for it (`services.states`); the RESOLVED still goes. A new episode starts
unacknowledged, and when `--for` runs out, REPEATs resume on the alert's repeat interval.
`alerts unack` takes the acknowledgement back.

Telling the incident trackers (issue 15). An acknowledgement is also an ACKNOWLEDGED message
(`kind` `acknowledged` in the outbox, text "acknowledged by NAME[: note]") for the channels that
track incident state (`Channel.tells_acknowledgements`: PagerDuty, which acknowledges the
episode's incident, and native-format webhooks); the channels people read (email, Slack, Teams,
WhatsApp, Apprise) are not sent one, so an ack does not spam the people it quietens. Rules:

* Who: each destination (channel and recipient) whose channel takes it and that was sent a
  message of the episode that opens or re-triggers its incident (`TRIGGERING_STATES`: FIRING,
  could-not-evaluate, REPEAT, ESCALATED, FLAPPING; the outbox row `sent`). A destination whose
  FIRING is still pending (retrying) or held back (a mute, maintenance window or silence) is
  told right after it is delivered (`queue_after_triggers`, called by delivery in the
  transaction that records it as sent), so an incident is never acknowledged before it was
  triggered.
* When: queued in the transaction that records the acknowledgement; `alerts ack` then sends
  that episode's ACKNOWLEDGED rows at once, with ONE attempt each (`services.send_now`: no
  backoff, no Retry-After wait; someone waits at the prompt), and what does not go (a 503, a
  timeout) stays pending for the next `alerts evaluate`, which delivers the whole outbox with
  the normal retry policy.
* Never after the RESOLVED: nothing is sent for an episode after its RESOLVED. When an episode
  is resolved (evaluation, `alerts history resolve`) its ACKNOWLEDGED rows not yet sent are
  withdrawn (suppressed, RESOLVED_FIRST), and delivery suppresses any it claims whose episode
  is resolved (`services.delivery`), whoever queued it.
* Once: the outbox key carries the acknowledgement's time, and acknowledging an episode that is
  still acknowledged (a new note, a new `--for`) queues nothing. After `alerts unack`, or once
  `--for` ran out, acknowledging again is a new acknowledgement and is sent again.
* Nothing holds it back: a mute, maintenance window or silence is about the check's messages,
  and an acknowledgement is a person's action that only ever makes the trackers quieter. (A
  muted alert whose FIRING was held back has no incident yet: its acknowledgement follows the
  FIRING when the mute ends, as above.)
* A resolved episode cannot be acknowledged (nor un-acknowledged), so it sends nothing; the
  check is made with the episode's row locked (`lock_open`), so an evaluation resolving it at
  the same moment wins.
* `alerts unack` sends nothing either: PagerDuty has no un-acknowledge event, so its incident
  stays acknowledged until PagerDuty's own acknowledgement timeout or a new trigger. The
  episode's ACKNOWLEDGED rows not yet sent are withdrawn (recorded as suppressed).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from datamantri_alerts.errors import InputError, NotFoundError
from datamantri_alerts.store.models import Alert, AlertHistory, Notification

if TYPE_CHECKING:
    from datamantri_alerts.clock import Clock
    from datamantri_alerts.services.delivery import Claimed
    from datamantri_alerts.services.leases import Holder
    from datamantri_alerts.services.send_now import Told
    from datamantri_alerts.store.engine import Store

#: Longest note kept (characters); the rest is cut.
NOTE_LIMIT = 2000
USER_LIMIT = 255
#: The outbox kind of an acknowledgement's messages (message state ACKNOWLEDGED).
ACK_KIND = "acknowledged"
#: Message states that open or re-trigger an episode's incident: a destination sent one of them
#: has something to acknowledge (RESOLVED, ACKNOWLEDGED and TEST do not count).
TRIGGERING_STATES = frozenset({"FIRING", "REPEAT", "ESCALATED", "FLAPPING"})
#: Why an ACKNOWLEDGED row not yet sent is not sent after `alerts unack`.
WITHDRAWN = "acknowledgement taken back before it was sent"
#: Why an ACKNOWLEDGED row not yet sent is never sent once its episode is resolved.
RESOLVED_FIRST = "episode resolved before the acknowledgement was sent"


@dataclass(frozen=True)
class Acknowledgement:
    """What `ack` recorded on one episode."""

    episode_id: int
    alert_id: int | None
    alert_name: str
    by: str
    at: datetime
    note: str | None
    until: datetime | None
    #: ACKNOWLEDGED messages queued for the trackers (0 when none takes it, or when the episode
    #: was still acknowledged: those were queued by the first acknowledgement).
    queued: int = 0
    #: Destinations whose triggering message (FIRING) is not delivered yet (pending, or held
    #: by a mute, window or silence): they are told after it (`destinations_waiting`).
    waiting: int = 0


def current_user(environ: Mapping[str, str] | None = None) -> str:
    """Who is acknowledging: `ALERTS_USER`, else the OS login name, else "unknown".

    `ALERTS_USER` is input like an option's text: one holding a control character (ESC, NUL,
    a newline ...) is refused (InputError naming ALERTS_USER, exit 2), as `--note` is
    (`inputs.check_cli_text`), before anything is written."""
    from datamantri_alerts.inputs import check_cli_text

    env = os.environ if environ is None else environ
    raw = env.get("ALERTS_USER", "")
    check_cli_text(raw, "ALERTS_USER", multiline=False)
    name = raw.strip()
    if not name:
        try:
            name = getpass.getuser()
        except (OSError, KeyError, ImportError):
            name = ""
    return (" ".join(name.split()) or "unknown")[:USER_LIMIT]


def is_acknowledged(
    acknowledged_at: datetime | None, ack_until: datetime | None, now: datetime
) -> bool:
    """True while an acknowledgement holds: given, and not yet run out."""
    return acknowledged_at is not None and (ack_until is None or now < ack_until)


def find_episode(session: Session, target: str, action: str = "acknowledge") -> AlertHistory:
    """The episode target names: an alert REF (its open episode), else an episode id.

    A REF that is both an alert id and an episode id means the alert (as everywhere REF is
    taken); `#123` or `episode:123` always means episode 123. NotFoundError (exit 2) when the
    alert has no open episode ("has no open episode to `action`") or nothing matches.
    """
    text = str(target).strip()
    for prefix in ("#", "episode:"):
        if text.startswith(prefix) and text[len(prefix) :].isdigit():
            return _episode(session, int(text[len(prefix) :]))
    alert = None
    if text.isdigit():
        alert = session.get(Alert, int(text))
    if alert is None and text:
        alert = session.scalars(select(Alert).where(Alert.name == text)).first()
    if alert is not None:
        episode = (
            session.get(AlertHistory, alert.current_episode_id)
            if alert.current_episode_id is not None
            else None
        )
        if episode is None or episode.resolved_at is not None:
            raise NotFoundError(
                f"alert {alert.id} ({alert.name}) has no open episode to {action}",
                field="REF",
            )
        return episode
    if text.isdigit():
        return _episode(session, int(text))
    raise NotFoundError(f"no alert or episode {text!r}", field="REF")


def _episode(session: Session, episode_id: int) -> AlertHistory:
    episode = session.get(AlertHistory, episode_id)
    if episode is None:
        raise NotFoundError(f"no episode with id {episode_id}", field="REF")
    return episode


def acknowledge(
    session: Session,
    target: str,
    *,
    by: str,
    now: datetime,
    note: str | None = None,
    length: timedelta | None = None,
) -> Acknowledgement:
    """Acknowledge the episode target names (see `find_episode`); a resolved episode is refused
    (InputError naming REF), checked again once the episode row is locked (`lock_open`), so an
    evaluation resolving it meanwhile wins. Acknowledging again replaces who/when/note/until."""
    episode = lock_open(session, find_episode(session, target), "acknowledged")
    if note is not None:
        note = note.strip()[:NOTE_LIMIT] or None
    renewed = is_acknowledged(episode.acknowledged_at, episode.ack_until, now)
    episode.acknowledged_at = now
    episode.acknowledged_by = by[:USER_LIMIT]
    episode.ack_note = note
    episode.ack_until = now + length if length is not None else None
    queued = 0 if renewed else queue_acknowledgement(session, episode, now)
    waiting = 0 if renewed else destinations_waiting(session, episode.id)
    return Acknowledgement(
        episode.id,
        episode.alert_id,
        episode.alert_name,
        episode.acknowledged_by,
        now,
        note,
        episode.ack_until,
        queued,
        waiting,
    )


def lock_open(session: Session, episode: AlertHistory, verb: str) -> AlertHistory:
    """Lock the episode's row (`leases.lock_rows`: SELECT ... FOR UPDATE where the store has
    it), re-read it and refuse it when it is resolved (InputError naming REF, "episode N is
    already resolved; it cannot be `verb`"). The check is made after the lock: an evaluation
    that resolved the episode after it was looked up has committed by then (PostgreSQL and
    MariaDB re-read the row under the lock; SQLite writes one transaction at a time). Delivery
    locks the episode too when it records a trigger as sent (`queue_after_triggers`), so one
    of the two always sees the other."""
    from datamantri_alerts.services.leases import lock_rows

    this = select(AlertHistory.id).where(AlertHistory.id == episode.id)
    session.execute(lock_rows(session, this))
    session.refresh(episode)
    if episode.resolved_at is not None:
        raise InputError(
            f"episode {episode.id} is already resolved; it cannot be {verb}", field="REF"
        )
    return episode


def destinations_waiting(session: Session, episode_id: int) -> int:
    """How many destinations that take acknowledgements have a triggering message of the
    episode not delivered yet (pending, or suppressed: held by a mute, window or silence) and
    none delivered: they are told of the acknowledgement after it (`queue_after_triggers`)."""
    rows = session.execute(
        select(
            Notification.channel, Notification.recipient, Notification.status, Notification.payload
        ).where(
            Notification.history_id == episode_id,
            Notification.kind != ACK_KIND,
            Notification.status.in_(["pending", "suppressed", "sent"]),
        )
    ).all()
    told = {(c, r) for c, r, status, payload in rows if status == "sent" and triggers(payload)}
    waiting = {
        (c, r)
        for c, r, status, payload in rows
        if status != "sent" and triggers(payload) and (c, r) not in told
    }
    return sum(1 for c, r in waiting if takes_acknowledgement(c, r))


def ack_summary(by: str | None, note: str | None) -> str:
    """The text of an ACKNOWLEDGED message: `acknowledged by NAME[: note]`."""
    return f"acknowledged by {by or 'unknown'}" + (f": {note}" if note else "")


def ack_payload(sent: Mapping[str, Any], episode: AlertHistory, now: datetime) -> dict[str, Any]:
    """The ACKNOWLEDGED message (outbox JSON) for episode, built from a triggering message a
    destination was sent (the same alert, labels and host), at `now`, with the episode's
    current severity; `details` holds `acknowledged_by` and, when given, `note` and `until`."""
    from datamantri_alerts.channels.base import Message

    message = Message.model_validate(sent)
    details: dict[str, Any] = {"acknowledged_by": episode.acknowledged_by}
    if episode.ack_note:
        details["note"] = episode.ack_note
    if episode.ack_until is not None:
        details["until"] = episode.ack_until.isoformat()
    acknowledged = message.model_copy(
        update={
            "state": "ACKNOWLEDGED",
            "at": now,
            "summary": ack_summary(episode.acknowledged_by, episode.ack_note),
            "details": details,
            "severity": episode.severity or message.severity,
            "episode_id": episode.id,
        }
    )
    return acknowledged.model_dump(mode="json")


def triggers(payload: Mapping[str, Any]) -> bool:
    """Whether an outbox message (JSON) opens or re-triggers its episode's incident: its state
    is one of TRIGGERING_STATES (PagerDuty's `trigger`)."""
    return isinstance(payload, Mapping) and payload.get("state") in TRIGGERING_STATES


def takes_acknowledgement(channel: str, recipient: str) -> bool:
    """Whether this destination is sent ACKNOWLEDGED messages (the channel's declared policy,
    `Channel.tells_acknowledgements` / `takes_acknowledgement`); an unknown channel is not."""
    from datamantri_alerts.channels import get_channel

    try:
        return bool(recipient) and get_channel(channel).takes_acknowledgement(recipient)
    except KeyError:
        return False


def _ack_row(
    episode: AlertHistory, channel: str, recipient: str, sent: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    from datamantri_alerts.services.outbox import outbox_row

    # One stamp per acknowledgement given (microseconds: every store keeps them), so an ack
    # taken back and given again within a second is still a new one.
    stamped = episode.acknowledged_at or now
    return outbox_row(
        alert_id=episode.alert_id,
        episode_id=episode.id,
        kind=ACK_KIND,
        stamp=stamped.strftime("%Y%m%dT%H%M%S.%f"),
        channel=channel,
        recipient=recipient,
        payload=ack_payload(sent, episode, now),
        now=now,
    )


def queue_acknowledgement(session: Session, episode: AlertHistory, now: datetime) -> int:
    """Queue the episode's ACKNOWLEDGED message for each destination that was sent one of its
    triggering messages (`triggers`) and whose channel takes it; returns how many. Destinations
    whose FIRING is still to go are told after it (`queue_after_triggers`)."""
    from datamantri_alerts.services.outbox import insert_rows

    told = session.execute(
        select(Notification.channel, Notification.recipient, Notification.payload)
        .where(
            Notification.history_id == episode.id,
            Notification.kind != ACK_KIND,
            Notification.status == "sent",
        )
        .order_by(Notification.id)
    ).all()
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for channel, recipient, payload in told:
        if (
            (channel, recipient) not in rows
            and triggers(payload)
            and takes_acknowledgement(channel, recipient)
        ):
            rows[(channel, recipient)] = _ack_row(episode, channel, recipient, payload, now)
    insert_rows(session, list(rows.values()))
    return len(rows)


def queue_after_triggers(session: Session, delivered: Sequence[Claimed], now: datetime) -> int:
    """For messages just delivered (rows of `delivery`) that trigger (`triggers`), queue the
    ACKNOWLEDGED of those whose episode is open and acknowledged now, to the same destination
    when its channel takes it; returns how many (the outbox key makes a destination already
    told of this acknowledgement a no-op). Called in the transaction that records them as
    sent, after the episodes were locked."""
    from datamantri_alerts.services.outbox import insert_rows

    wanted = [
        r
        for r in delivered
        if r.kind != ACK_KIND
        and r.history_id is not None
        and triggers(r.payload)
        and takes_acknowledgement(r.channel, r.recipient)
    ]
    if not wanted:
        return 0
    ids = sorted({r.history_id for r in wanted if r.history_id is not None})
    episodes = {
        e.id: e
        for e in session.scalars(
            select(AlertHistory).where(
                AlertHistory.id.in_(ids),
                AlertHistory.resolved_at.is_(None),
                AlertHistory.acknowledged_at.is_not(None),
            )
        )
        if is_acknowledged(e.acknowledged_at, e.ack_until, now)
    }
    rows = [
        _ack_row(episodes[r.history_id], r.channel, r.recipient, r.payload, now)
        for r in wanted
        if r.history_id in episodes
    ]
    insert_rows(session, rows)
    return len(rows)


def withdraw_pending(
    session: Session, episode_ids: int | Sequence[int], reason: str = WITHDRAWN
) -> int:
    """Mark the episodes' ACKNOWLEDGED rows not yet sent as suppressed, with `reason` as
    last_error (`alerts unack`: WITHDRAWN; an episode resolved: RESOLVED_FIRST, since nothing
    is sent for an episode after its RESOLVED); returns how many."""
    ids = [episode_ids] if isinstance(episode_ids, int) else list(episode_ids)
    if not ids:
        return 0
    result = session.execute(
        update(Notification)
        .where(
            Notification.history_id.in_(ids),
            Notification.kind == ACK_KIND,
            Notification.status == "pending",
        )
        .values(status="suppressed", last_error=reason, lease_holder=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


def pagerduty_acknowledged(session: Session, episode: AlertHistory) -> bool:
    """Whether an acknowledgement of the episode was delivered to a PagerDuty destination (an
    ACKNOWLEDGED outbox row to `pagerduty` with status `sent`): only then does an incident
    stay acknowledged there after `alerts unack`."""
    found = session.scalar(
        select(Notification.id)
        .where(
            Notification.history_id == episode.id,
            Notification.channel == "pagerduty",
            Notification.kind == ACK_KIND,
            Notification.status == "sent",
        )
        .limit(1)
    )
    return found is not None


def unacknowledge(session: Session, target: str) -> tuple[AlertHistory, bool]:
    """Take back an episode's acknowledgement; (episode, whether it was acknowledged). Its
    ACKNOWLEDGED messages not yet sent are withdrawn; nothing is sent (see the module
    docstring: PagerDuty has no un-acknowledge). A resolved episode is refused like `acknowledge`
    (InputError naming REF; its record of who acknowledged it stays)."""
    episode = lock_open(session, find_episode(session, target, "un-acknowledge"), "un-acknowledged")
    was = episode.acknowledged_at is not None
    withdraw_pending(session, episode.id)
    episode.acknowledged_at = None
    episode.acknowledged_by = None
    episode.ack_note = None
    episode.ack_until = None
    return episode, was


def ack_as_json(episode: AlertHistory, now: datetime) -> dict[str, object] | None:
    """An episode's acknowledgement for JSON output (None when never acknowledged)."""
    if episode.acknowledged_at is None:
        return None
    return {
        "by": episode.acknowledged_by,
        "at": episode.acknowledged_at.isoformat(),
        "note": episode.ack_note,
        "until": episode.ack_until.isoformat() if episode.ack_until else None,
        "active": is_acknowledged(episode.acknowledged_at, episode.ack_until, now),
    }


def open_acknowledgements(
    session: Session, alert_ids: list[int], now: datetime
) -> dict[int, AlertHistory]:
    """alert id -> its open episode, for those of alert_ids whose open episode is acknowledged
    now (for `list` and `show`)."""
    if not alert_ids:
        return {}
    rows = session.execute(
        select(Alert.id, AlertHistory)
        .join(AlertHistory, AlertHistory.id == Alert.current_episode_id)
        .where(
            Alert.id.in_(alert_ids),
            AlertHistory.resolved_at.is_(None),
            AlertHistory.acknowledged_at.is_not(None),
        )
    ).all()
    return {
        alert_id: episode
        for alert_id, episode in rows
        if is_acknowledged(episode.acknowledged_at, episode.ack_until, now)
    }


def describe(episode: AlertHistory) -> str:
    """`acknowledged by NAME at TIME [until TIME]: NOTE`, for the text displays."""
    text = f"acknowledged by {episode.acknowledged_by} at {_fmt(episode.acknowledged_at)}"
    if episode.ack_until is not None:
        text += f" until {_fmt(episode.ack_until)}"
    if episode.ack_note:
        text += f": {episode.ack_note}"
    return text


def _fmt(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "-"


def tell_trackers(
    store: Store,
    clock: Clock,
    me: Holder,
    episode_id: int,
    environ: Mapping[str, str] | None = None,
) -> Told:
    """Send the episode's pending ACKNOWLEDGED messages now (`alerts ack`), as holder `me`,
    with one attempt per destination (`services.send_now`); what is left pending is sent by
    the next `alerts evaluate` with the normal retry policy. The acknowledgement is recorded
    either way."""
    from datamantri_alerts.services.send_now import send_now

    scope = [Notification.history_id == episode_id, Notification.kind == ACK_KIND]
    return send_now(store, clock, me, scope, "the acknowledgement", environ=environ)
