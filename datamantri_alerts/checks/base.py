"""The check contract: a validated config in, an Outcome out.

A check never raises for a condition it observed; "could not evaluate" is an `error` outcome,
kept apart from the condition itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from datamantri_alerts.clock import Clock
from datamantri_alerts.limits import IntervalMinutes

if TYPE_CHECKING:
    from datamantri_alerts.checks.pool import SourcePool

Severity = Literal["info", "warning", "critical"]
OutcomeStatus = Literal["ok", "firing", "error"]

#: Config keys that name a watched entity, and which kind of entity each names.
REFERENCE_FIELDS: dict[str, str] = {
    "datasource_id": "datasource",
    "pipeline_id": "pipeline",
    "dashboard_id": "dashboard",
}


class CheckConfig(BaseModel):
    """Fields every alert type accepts; each type extends this with its own.

    Numbers and text fields use the bounded types of `datamantri_alerts.limits` (finite, within
    ranges that time arithmetic cannot overflow, no control characters); new types should too.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    check_interval_minutes: IntervalMinutes = 5

    def references(self) -> list[tuple[str, str]]:
        """(kind, id) of every entity this config names, for existence checks."""
        refs = []
        for key, kind in REFERENCE_FIELDS.items():
            value = getattr(self, key, None)
            if isinstance(value, str) and value:
                refs.append((kind, value))
        return refs

    def timeout(self) -> float:
        """How long one evaluation may take before it is cut off (seconds)."""
        return float(getattr(self, "timeout_seconds", 30))


@dataclass
class Outcome:
    status: OutcomeStatus
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    severity: Severity | None = None
    #: State the check wants kept until its next evaluation (e.g. consecutive failures).
    check_state: dict[str, Any] | None = None

    @classmethod
    def ok(cls, summary: str, **details: Any) -> Outcome:
        return cls("ok", summary, details)

    @classmethod
    def firing(cls, summary: str, **details: Any) -> Outcome:
        return cls("firing", summary, details)

    @classmethod
    def error(cls, summary: str, **details: Any) -> Outcome:
        return cls("error", summary, details)


class CannotEvaluate(Exception):
    """Raised inside a check when it could not look at what it watches (missing data source,
    unset environment variable, a failing query). The runner turns it into an `error` outcome
    with this message, which must already be free of secrets."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


@dataclass
class CheckContext:
    """What a check may use: the store (job runs, entities), a clock, and its own saved state."""

    clock: Clock
    #: Returns a context manager yielding a store Session (e.g. `Store.session`).
    session_factory: Callable[[], Any]
    alert_id: int | None = None
    alert_name: str = ""
    check_state: dict[str, Any] = field(default_factory=dict)
    #: `time.monotonic()` value by which the runner stops waiting for this check.
    deadline: float | None = None
    #: Shared by the contexts of one evaluator run: what several checks read alike (a data
    #: source row) is read from the store once per run, not once per alert.
    run_cache: dict[Any, Any] = field(default_factory=dict)
    #: The run's data source connections, watchdog and HTTP session (`checks.pool`), set by
    #: the runner; None outside a run (each `open_source` then makes a pool of its own).
    sources: SourcePool | None = None


@runtime_checkable
class Check(Protocol):
    """One alert type. Modules under `checks/` expose one as `CHECK`."""

    type_name: ClassVar[str]
    config_model: ClassVar[type[CheckConfig]]
    default_severity: ClassVar[Severity]
    description: ClassVar[str]

    def evaluate(self, config: Any, ctx: CheckContext) -> Outcome: ...


class GroupedCheck(Protocol):
    """An alert type whose evaluations on one data source can be read together.

    The runner (`services.checking`) gathers the alerts of one claimed batch that share a
    `group_key` (None: this alert is always evaluated alone) into groups of at most
    `GROUP_SIZE` and hands each group to `evaluate_group` on one worker: one statement, one
    round trip, instead of one per alert. `evaluate_group` returns one entry per config, in
    order: an `Outcome`, exactly the one `evaluate` would have given, or None for an alert the
    group could not answer (its statement failed, was cut off, or the value is unreadable),
    which the runner then evaluates alone at once, with its own timeout. So a group never
    makes an alert's result different, or its error less precise, than evaluating it alone;
    the most it costs is the group's short bound (`GROUP_BOUND_SECONDS`) before that.
    """

    def group_key(self, config: Any) -> Any: ...

    def evaluate_group(
        self, configs: list[Any], contexts: list[CheckContext]
    ) -> list[Outcome | None]: ...


#: Most alerts read together in one statement (`GroupedCheck`).
GROUP_SIZE = 50
#: A group's statement is cut off after this many seconds (or the members' own timeout, when
#: shorter); then every member is evaluated alone. One slow or locked table costs the healthy
#: members of its group at most this long.
GROUP_BOUND_SECONDS = 1.0
