"""Leases: which evaluator process is working on an alert or an outbox row.

A lease is `lease_holder = "host:pid"` plus `lease_expires_at`. A row may be claimed when it has no
holder, when its lease has expired, or when its holder ran on this host and that process no longer
exists (the next cron run finishes a crashed run's work at once). A live holder is never displaced.

Claiming happens inside `Store.transaction()`: on PostgreSQL and MySQL/MariaDB the candidate rows
are selected with `FOR UPDATE SKIP LOCKED`, so concurrent evaluators on any number of hosts split
the work without waiting on each other; on SQLite the transaction starts with `BEGIN IMMEDIATE`,
which serialises writers, so the select-then-update pair is atomic. `lock_rows` is the one place
that decides how a dialect locks the rows a transaction reads before writing them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, and_, or_, select, update
from sqlalchemy.orm import Session

from datamantri_alerts.store.types import MYSQL_DIALECTS

if TYPE_CHECKING:
    from datamantri_alerts.clock import Clock
    from datamantri_alerts.store.engine import Store

log = logging.getLogger(__name__)

#: Dialects whose servers lock rows read with `SELECT ... FOR UPDATE` (SQLite locks the file).
ROW_LOCKING_DIALECTS = frozenset({"postgresql", *MYSQL_DIALECTS})

#: A run renews the leases it still needs when this fraction of their time has passed
#: (`renew_held`): a live run's leases never have less than two thirds of their time left.
RENEW_LEASES_AFTER = 1 / 3
#: The shortest time between two renewals (seconds), whatever the lease: a lease of zero (an
#: API caller's) must not turn the loops that renew into busy loops of write transactions.
MIN_RENEW_INTERVAL = 0.1


def renew_interval(ttl: timedelta) -> float:
    """Seconds between two renewals of leases of `ttl`: `RENEW_LEASES_AFTER` of it, at least
    `MIN_RENEW_INTERVAL`."""
    return max(MIN_RENEW_INTERVAL, ttl.total_seconds() * RENEW_LEASES_AFTER)


@dataclass(frozen=True)
class Holder:
    """This process as a lease holder."""

    host: str
    pid: int

    @classmethod
    def current(cls, host: str) -> Holder:
        return cls(host=host, pid=os.getpid())

    @property
    def id(self) -> str:
        return f"{self.host}:{self.pid}"


def parse_holder(value: str) -> tuple[str, int | None]:
    host, _, pid = value.rpartition(":")
    return (host, int(pid)) if pid.isdigit() else (value, None)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def dead_local_holders(holders: Iterable[str], me: Holder) -> list[str]:
    """Holders that ran on this host in a process that no longer exists."""
    dead = []
    for holder in holders:
        host, pid = parse_holder(holder)
        if host == me.host and pid is not None and pid != me.pid and not process_exists(pid):
            dead.append(holder)
    return dead


def _supports_skip_locked(session: Session) -> bool:
    """PostgreSQL >= 9.5, MySQL >= 8.0 and MariaDB >= 10.6 skip locked rows."""
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        return True
    version = tuple(dialect.server_version_info or ())
    if getattr(dialect, "is_mariadb", False):
        return version >= (10, 6)
    return version >= (8, 0)


def lock_rows(session: Session, query: Select[Any], *, skip_locked: bool = False) -> Select[Any]:
    """query with the rows it reads locked until the transaction ends, where the dialect can.

    skip_locked: leave rows another transaction holds out of the result instead of waiting
    for them (a server too old for SKIP LOCKED waits instead, which is slower but as safe).
    On SQLite the query is returned as is: `BEGIN IMMEDIATE` already serialises writers.
    """
    if session.get_bind().dialect.name not in ROW_LOCKING_DIALECTS:
        return query
    return query.with_for_update(skip_locked=skip_locked and _supports_skip_locked(session))


def claimable(model: Any, now: datetime, dead: Sequence[str]) -> ColumnElement[bool]:
    """Rows with no live lease: free, expired, or held by a dead process on this host."""
    conditions = [model.lease_holder.is_(None), model.lease_expires_at <= now]
    if dead:
        conditions.append(model.lease_holder.in_(list(dead)))
    return or_(*conditions)


def dead_holders(
    session: Session,
    model: Any,
    *,
    where: Sequence[ColumnElement[bool]],
    me: Holder,
    now: datetime,
) -> list[str]:
    """The holders of unexpired leases on model's rows matching where that are processes of
    this host no longer running (`dead_local_holders`): their rows may be claimed at once.

    It reads every leased row matching where (no index covers the lease columns), so a run
    claiming many batches looks once (`claim`'s `dead`), not once per batch: a holder dying
    during the run keeps its rows until their leases expire, as on another host."""
    held = session.scalars(
        select(model.lease_holder)
        .where(*where, model.lease_holder.is_not(None), model.lease_expires_at > now)
        .distinct()
    ).all()
    return dead_local_holders(held, me)


def claim(
    session: Session,
    model: Any,
    *,
    where: Sequence[ColumnElement[bool]],
    order_by: Sequence[Any],
    me: Holder,
    now: datetime,
    ttl: timedelta,
    limit: int,
    dead: Sequence[str] | None = None,
) -> list[int]:
    """Lease up to `limit` rows of model matching where; returns their ids.

    `dead`: the holders whose live-looking leases may be taken over (`dead_holders`), when
    the caller already knows them; None: looked up here. Must run inside
    `Store.transaction()`.
    """
    if dead is None:
        dead = dead_holders(session, model, where=where, me=me, now=now)
    query = (
        select(model.id).where(*where, claimable(model, now, dead)).order_by(*order_by).limit(limit)
    )
    ids = list(session.scalars(lock_rows(session, query, skip_locked=True)).all())
    if ids:
        # A Core UPDATE of the table: the ORM's bulk UPDATE machinery costs more than the
        # statement, and no object of the session holds these rows.
        table = model.__table__
        session.execute(
            update(table)
            .where(table.c.id.in_(ids))
            .values(lease_holder=me.id, lease_expires_at=now + ttl)
        )
    return ids


def still_held(session: Session, model: Any, ids: Sequence[int], me: Holder) -> set[int]:
    """Of ids, those this process still holds, locked until the transaction ends.

    Called inside the transaction that writes a claimed batch's results, so a result is never
    written over a row whose lease expired and was taken over meanwhile.
    """
    if not ids:
        return set()
    query = (
        select(model.id)
        .where(and_(model.id.in_(list(ids)), model.lease_holder == me.id))
        .order_by(model.id)
    )
    return set(session.scalars(lock_rows(session, query)).all())


def renew(
    session: Session,
    model: Any,
    ids: Sequence[int],
    *,
    me: Holder,
    now: datetime,
    ttl: timedelta,
) -> int:
    """Extend this process's leases on `ids` to `now + ttl`; returns how many it still held.

    A lease that ran out and that nobody took over is still this process's (its results are
    written: `still_held` asks for the holder only), so it is renewed too. One taken over has
    another holder: a claim changes the holder under the row's lock (PostgreSQL,
    MySQL/MariaDB: `FOR UPDATE`, which this waits for and then reads again) or the file's
    (SQLite), so a live holder is never displaced.

    Rows are found by primary key, never by scanning for the holder (no index covers it, and a
    locking scan on MySQL/MariaDB would wait for every row other evaluators hold), and locked in
    id order first (`lock_rows`), as the result writer's transaction locks its batch, so the
    two transactions of one run never deadlock. Must run inside `Store.transaction()`."""
    renewed = 0
    for start in range(0, len(ids), _IDS_PER_STATEMENT):
        chunk = sorted(ids[start : start + _IDS_PER_STATEMENT])
        held = (model.id.in_(chunk), model.lease_holder == me.id)
        if session.get_bind().dialect.name in ROW_LOCKING_DIALECTS:
            session.execute(lock_rows(session, select(model.id).where(*held).order_by(model.id)))
        renewed += _update(session, model, held, lease_expires_at=now + ttl)
    return renewed


#: Ids per statement of `renew` (well under every dialect's limit of bound parameters).
_IDS_PER_STATEMENT = 500


def renew_held(
    store: Store, model: Any, ids: Sequence[int], *, me: Holder, clock: Clock, ttl: timedelta
) -> None:
    """`renew` this process's leases on `ids` (alerts claimed and not written yet, outbox rows
    claimed and not recorded yet) to a full `ttl` from now, in a transaction of its own. A
    store that cannot take the write now is logged, not raised: the run goes on, and its leases
    may expire (another run may then take those rows too), as without renewing."""
    if not ids:
        return
    try:
        renewed = _in_own_transaction(
            store, lambda session: renew(session, model, ids, me=me, now=clock.now(), ttl=ttl)
        )
    except Exception as exc:
        log.warning(
            "could not renew the leases of %s (%s): another evaluator may take over the %s "
            "when they expire",
            me.id,
            type(exc).__name__,
            model.__tablename__,
        )
        return
    log.debug("renewed %d %s leases of %s", renewed, model.__tablename__, me.id)


def release(session: Session, model: Any, ids: Sequence[int], me: Holder) -> int:
    """Give up this process's leases on `ids` (claimed, then not wanted); returns how many.
    The rows are claimable at once by any evaluator. Must run inside `Store.transaction()`."""
    if not ids:
        return 0
    held = (model.id.in_(list(ids)), model.lease_holder == me.id)
    return _update(session, model, held, lease_holder=None, lease_expires_at=None)


def give_back(store: Store, model: Any, ids: Sequence[int], me: Holder) -> None:
    """`release` this process's leases on `ids` in a transaction of its own: claimed, then not
    wanted (alerts past a batch's units; outbox rows already tried in this run)."""
    if ids:
        _in_own_transaction(store, lambda session: release(session, model, ids, me))


def _in_own_transaction(store: Store, work: Callable[[Session], int]) -> int:
    """`work(session)` in a store transaction of its own, written again when the store rolled
    it back to break a deadlock (`store.engine.retry_write_conflicts`)."""
    from datamantri_alerts.store.engine import retry_write_conflicts

    def once() -> int:
        with store.transaction() as session:
            return work(session)

    return retry_write_conflicts(once)


def release_all(session: Session, model: Any, me: Holder) -> int:
    """Give up every lease this process holds on model's rows (a run stopping early); returns
    how many. The rows are claimable at once by any evaluator, on any host."""
    return _update(
        session, model, (model.lease_holder == me.id,), lease_holder=None, lease_expires_at=None
    )


def _update(session: Session, model: Any, where: Sequence[Any], **values: Any) -> int:
    """UPDATE model's rows matching `where` to `values`; returns how many rows matched."""
    result = session.execute(
        update(model).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
