"""Silences by label matcher, as Alertmanager's: every alert whose labels match all of a
silence's matchers notifies nothing while the silence lasts, including alerts created later.

A matcher is `name=value`, `name!=value`, `name=~regex` or `name!~regex`; a regex must match
the whole value (as in Alertmanager), and a label an alert does not have reads as "". A
silence ends when its time is up or `alerts silence expire` ends it (`ends_at` becomes now);
what it held back is then sent as at the end of a mute (`services.mute.release_after_mute`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from datamantri_alerts.errors import InputError
from datamantri_alerts.services.mute import MAX_MUTE
from datamantri_alerts.store.models import Silence

LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}$")
_MATCHER = re.compile(r"^\s*([^=!~\s]+)\s*(=~|!~|!=|=)\s*(.*?)\s*$")
OPERATORS = ("=", "!=", "=~", "!~")


@dataclass(frozen=True)
class Matcher:
    """One `name op value` condition on an alert's labels."""

    name: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = str(labels.get(self.name, ""))
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found


def parse_matcher(text: str, field: str = "--match") -> Matcher:
    """`team=data`, `env!=dev`, `service=~db-.*` as a Matcher; InputError names the problem."""
    match = _MATCHER.match(text)
    if not match or not LABEL_NAME.match(match.group(1)):
        raise InputError(
            f"{text!r} is not a matcher NAME=VALUE (also !=, =~ and !~ for a regex)", field=field
        )
    name, op, value = match.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise InputError(f"{text!r}: invalid regular expression ({exc})", field=field) from None
    return Matcher(name, op, value)


def parse_label_pairs(pairs: Sequence[str] | None, field: str = "--label") -> dict[str, str]:
    """`["team=data", "env=prod"]` as {"team": "data", "env": "prod"}; InputError otherwise."""
    labels: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not LABEL_NAME.match(name):
            raise InputError(f"{pair!r} is not a label NAME=VALUE", field=field)
        labels[name] = value.strip()
    return labels


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str] | None) -> bool:
    return all(m.matches(labels or {}) for m in matchers)


def matchers_of(silence: Silence) -> list[Matcher]:
    return [Matcher(str(n), str(o), str(v)) for n, o, v in silence.matchers or []]


def add_silence(
    session: Session,
    matchers: Sequence[Matcher],
    duration: timedelta,
    reason: str | None,
    now: datetime,
    *,
    created_by: str | None = None,
) -> Silence:
    """Start a silence now for `duration` (at most 366 days, like a mute)."""
    if not matchers:
        raise InputError("give at least one --match NAME=VALUE", field="--match")
    if duration <= timedelta(0):
        raise InputError("must be positive", field="--for")
    if duration > MAX_MUTE:
        raise InputError("at most 366 days", field="--for")
    silence = Silence(
        matchers=[[m.name, m.op, m.value] for m in matchers],
        starts_at=now,
        ends_at=now + duration,
        reason=reason or None,
        created_by=created_by,
        created_at=now,
    )
    session.add(silence)
    session.flush()
    return silence


def expire_silence(session: Session, silence_id: int, now: datetime) -> bool:
    """End the silence now; returns whether it was still active. InputError if unknown."""
    silence = session.get(Silence, silence_id)
    if silence is None:
        raise InputError(f"no silence with id {silence_id}", field="SILENCE_ID")
    if silence.ends_at <= now:
        return False
    silence.ends_at = now
    return True


def list_silences(
    session: Session, now: datetime, *, include_expired: bool = False
) -> list[Silence]:
    query = select(Silence).order_by(Silence.id)
    if not include_expired:
        query = query.where(Silence.ends_at > now)
    return list(session.scalars(query))


#: Silences in force at `now`, built once: the result writer asks at every batch.
_ACTIVE_SILENCES = (
    select(Silence)
    .where(Silence.starts_at <= bindparam("now"), Silence.ends_at > bindparam("now"))
    .order_by(Silence.id)
)


def active_silences(session: Session, now: datetime) -> list[Silence]:
    """Silences in force at `now`."""
    return list(session.scalars(_ACTIVE_SILENCES, {"now": now}))


def silence_for(silences: Sequence[Silence], labels: Mapping[str, str] | None) -> Silence | None:
    """The first (oldest) of `silences` whose matchers all match `labels`."""
    for silence in silences:
        if matches_all(matchers_of(silence), labels):
            return silence
    return None


def describe(silence: Silence) -> str:
    """`silence 3 (team=data, env=prod) until <instant>: reason` for suppressed rows."""
    text = ", ".join(str(m) for m in matchers_of(silence))
    line = f"silence {silence.id} ({text}) until {silence.ends_at.isoformat()}"
    return line + (f": {silence.reason}" if silence.reason else "")
