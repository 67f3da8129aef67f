"""Storms become digests: many notifications for one destination go as one message.

When the rows one delivery worker claimed hold more than a threshold of notifications for the
same destination (channel and recipient), they are sent as a digest (`channels.base.Digest`)
listing each alert, split into pages only where the channel's own limits force it
(`Channel.digest_pages`: Slack 50 blocks / 3000-character sections, Teams 28 KB, WhatsApp the
body limit, e-mail never). Each page is one send through the one retry policy, and its outcome
is every one of its rows' outcome: a transient failure leaves them all pending for a later run,
a permanent one fails them all, and a delivered page marks each row sent with the digest id in
its episode's history.

Thresholds: `ALERTS_DIGEST_THRESHOLD` (default 5: six or more notifications become a digest),
overridden per channel by `ALERTS_DIGEST_THRESHOLD_<CHANNEL>` (e.g. `..._EMAIL`); 0 turns
digests off for that channel.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from datamantri_alerts.errors import InputError

if TYPE_CHECKING:
    from datamantri_alerts.channels.retry import DeliveryResult, RetryPolicy
    from datamantri_alerts.services.delivery import Claimed

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 5
THRESHOLD_ENV = "ALERTS_DIGEST_THRESHOLD"


@dataclass(frozen=True)
class DigestPolicy:
    """More than `threshold` notifications for one destination in a batch make a digest."""

    default: int = DEFAULT_THRESHOLD
    per_channel: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DigestPolicy:
        """The thresholds the environment sets; InputError naming the variable when one is
        not a whole number of at least 0."""
        from datamantri_alerts.channels import channel_names

        env = os.environ if environ is None else environ
        default = _threshold(env, THRESHOLD_ENV, DEFAULT_THRESHOLD)
        per_channel = tuple(
            (name, _threshold(env, f"{THRESHOLD_ENV}_{name.upper()}", default))
            for name in channel_names()
        )
        return cls(default, per_channel)

    def threshold(self, channel: str) -> int:
        return dict(self.per_channel).get(channel, self.default)


def _threshold(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise InputError(f"{name} must be a whole number (0 turns digests off), got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class Unit:
    """What one send delivers: one outbox row, or the rows of one digest page."""

    rows: tuple[Claimed, ...]
    digest_id: str | None = None


def plan(rows: Sequence[Claimed], policy: DigestPolicy) -> list[Unit]:
    """rows (one worker's claimed batch) as sends: a destination with more rows than its
    channel's threshold becomes one digest unit (paged later, at send time), the others stay
    one unit per row. Order follows the first row of each unit."""
    groups: dict[tuple[str, str], list[Claimed]] = {}
    for row in rows:
        groups.setdefault((row.channel, row.recipient), []).append(row)
    units: list[Unit] = []
    for (channel, recipient), members in groups.items():
        threshold = policy.threshold(channel)
        if recipient and 0 < threshold < len(members) and sends_digests(channel):
            units.append(Unit(tuple(members), new_digest_id()))
        else:
            units.extend(Unit((row,)) for row in members)
    return units


def sends_digests(channel: str) -> bool:
    """Whether channel can send a digest (`channels.base.DigestChannel`); an unknown channel or
    one without digests (PagerDuty incidents, generic webhooks) gets each notification alone."""
    from datamantri_alerts.channels import get_channel
    from datamantri_alerts.channels.base import DigestChannel

    try:
        return isinstance(get_channel(channel), DigestChannel)
    except KeyError:
        return False


def new_digest_id() -> str:
    return "dg-" + uuid.uuid4().hex[:12]


def send_digest(
    unit: Unit,
    *,
    environ: Mapping[str, str] | None,
    policy: RetryPolicy | None,
    sleep: Callable[[float], None] | None,
) -> list[tuple[Claimed, DeliveryResult]]:
    """A digest unit as pages, each through the retry policy; never raises. Every row gets its
    page's result (a payload that cannot be read fails that row alone, permanently)."""
    from datamantri_alerts.channels import get_channel
    from datamantri_alerts.channels.base import Digest, Message
    from datamantri_alerts.channels.retry import deliver
    from datamantri_alerts.services.delivery import failed_result, send_one

    first = unit.rows[0]
    if not sends_digests(first.channel):  # send_one records an unknown channel on each row
        return [
            (row, send_one(row, environ=environ, policy=policy, sleep=sleep)) for row in unit.rows
        ]
    channel = get_channel(first.channel)
    readable: list[Claimed] = []
    messages: list[Message] = []
    done: list[tuple[Claimed, DeliveryResult]] = []
    for row in unit.rows:
        try:
            messages.append(Message.model_validate(row.payload))
            readable.append(row)
        except Exception:
            done.append((row, send_one(row, environ=environ, policy=policy, sleep=sleep)))
    if not messages:
        return done
    digest = Digest(digest_id=unit.digest_id or new_digest_id(), messages=messages)
    try:
        env = os.environ if environ is None else environ
        pages = channel.digest_pages(digest, channel.config_model.from_env(env))
    except Exception:  # not configured or a broken template: deliver() reports it per page
        pages = [list(range(len(messages)))]
    kwargs: dict[str, Any] = {"environ": environ, "policy": policy}
    if sleep is not None:
        kwargs["sleep"] = sleep
    for page in pages:
        try:
            result = deliver(channel, digest.part(page), first.recipient, **kwargs)
        except Exception as exc:  # deliver() promises not to raise; keep the batch alive
            from datamantri_alerts.secrets import redact_text

            log.exception("delivery of digest %s crashed", digest.digest_id)
            reason = redact_text(f"internal error: {type(exc).__name__}: {exc}")
            done.extend((readable[i], failed_result(readable[i], reason)) for i in page)
            continue
        done.extend((readable[i], result) for i in page)
    return done
