"""Sending an episode's messages now, from a command someone waits for.

`alerts ack` sends the episode's ACKNOWLEDGED messages, and `alerts history resolve` its
RESOLVED, at once instead of at the next `alerts evaluate`: a tracker (PagerDuty) hears of a
person's action when they take it, and an evaluator that is stopped (maintenance, a broken
timer) does not keep an incident open. The rows go through the outbox delivery like any other
(`services.delivery.deliver_pending`: destination policy, redaction, history, the rule that
nothing goes after an episode's RESOLVED), with ONE attempt per destination
(`interactive_policy`): no backoff and no Retry-After wait at the prompt. What does not go
stays pending for the next `alerts evaluate`, which tries it with its own environment and the
normal retry policy: a 503 or a timeout, and also what would fail for good here (a `${VAR}` of a
recipient set in the evaluator's environment and not in this shell's, a 4xx), so a person's
shell never fails a message for good (`deliver_pending`'s `defer_failures`). The command's own
change (the acknowledgement, the resolution) is recorded either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from datamantri_alerts.errors import InputError
from datamantri_alerts.store.models import Notification

if TYPE_CHECKING:
    from datamantri_alerts.channels.retry import RetryPolicy
    from datamantri_alerts.clock import Clock
    from datamantri_alerts.services.leases import Holder
    from datamantri_alerts.store.engine import Store


@dataclass
class Told:
    """What a command delivered now: counts of its rows sent, left pending, failed for good,
    and one line per destination not reached (`problems`, for the command's warnings)."""

    sent: int = 0
    pending: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, int]:
        return {"sent": self.sent, "pending": self.pending, "failed": self.failed}


def interactive_policy(environ: Mapping[str, str] | None = None) -> RetryPolicy:
    """The retry policy of a command someone waits for: the configured one
    (`RetryPolicy.from_env`, InputError when a variable is not a number) cut to ONE attempt,
    so it never backs off nor waits out a Retry-After (a 503 with Retry-After: 120 would
    otherwise hold the prompt for the 60 s cap per wait). Each request keeps its normal
    timeouts (`ALERTS_HTTP_CONNECT_TIMEOUT`, `ALERTS_HTTP_READ_TIMEOUT`)."""
    from dataclasses import replace

    from datamantri_alerts.channels.retry import RetryPolicy

    return replace(RetryPolicy.from_env(environ), attempts=1)


def send_now(
    store: Store,
    clock: Clock,
    me: Holder,
    scope: Sequence[Any],
    what: str,
    *,
    environ: Mapping[str, str] | None = None,
) -> Told:
    """Send the pending outbox rows matching every `scope` condition now, as holder `me`, one
    attempt each; `what` names them in the problems ("the acknowledgement", "the RESOLVED").
    A delivery setting that is not usable (a digest threshold) leaves everything pending for
    the next `alerts evaluate`, with one problem saying so."""
    from datamantri_alerts.channels import get_channel
    from datamantri_alerts.services.delivery import deliver_pending

    try:
        policy = interactive_policy(environ)
        tally = deliver_pending(
            store,
            clock,
            me,
            concurrency=4,
            scope=scope,
            environ=environ,
            policy=policy,
            defer_failures=True,
        )
    except InputError as exc:
        later = "the next `alerts evaluate` sends it once that is fixed"
        return Told(problems=[f"{what} was not sent now ({exc}); {later}"])
    told = Told(tally.sent, tally.pending, tally.failed)
    with store.session() as session:
        rows = session.execute(
            select(
                Notification.id,
                Notification.channel,
                Notification.recipient,
                Notification.last_error,
            )
            # What this command tries and cannot send stays pending (`defer_failures`); one
            # failed before is not its news.
            .where(*scope, Notification.status == "pending")
            .order_by(Notification.id)
        ).all()
    for row_id, channel, recipient, error in rows:
        try:
            shown = get_channel(channel).mask_recipient(recipient)
        except KeyError:
            shown = "?"
        where = f"{what} to {channel} {shown}"
        if row_id not in tally.tried:
            # Not tried now: due later (a retry's backoff), or waiting for a message of its
            # episode to the same destination that is still being sent.
            told.problems.append(f"{where} was not sent now; the next `alerts evaluate` sends it")
        else:
            why = error or "unknown error"
            told.problems.append(
                f"{where} was not delivered yet ({why}); the next `alerts evaluate` retries it"
            )
    return told
