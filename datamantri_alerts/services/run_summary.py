"""What an evaluator run reports: one line per alert evaluated, the counts, the problems.

`RunSummary` is filled by the result writer (`services.results.apply_results`, one batch at a
time) and by the run (`services.evaluate.run_evaluation`: deliveries, overdue notifications),
and read by the CLI (table, `--json`, exit code) and the run's record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datamantri_alerts.services.delivery import DeliveryTally


@dataclass
class AlertResult:
    id: int
    name: str
    condition_type: str
    outcome: str
    state: str
    severity: str
    summary: str
    duration_ms: int

    def as_json(self) -> dict[str, Any]:
        return AlertResult.all_as_json([self])[0]

    @staticmethod
    def all_as_json(results: list[AlertResult]) -> list[dict[str, Any]]:
        """`as_json` of each of `results`, in one comprehension: a run's 5,000 results are
        5,000 method calls less (the call was about half of each result's cost)."""
        return [
            {
                "id": r.id,
                "name": r.name,
                "condition_type": r.condition_type,
                "outcome": r.outcome,
                "state": r.state,
                "severity": r.severity,
                "summary": r.summary,
                "duration_ms": r.duration_ms,
            }
            for r in results
        ]


@dataclass
class RunSummary:
    run_id: int | None
    results: list[AlertResult] = field(default_factory=list)
    notifications: DeliveryTally = field(default_factory=DeliveryTally)
    firing: int = 0
    resolved: int = 0
    errors: int = 0
    #: Notifications queued as suppressed (muted alerts) in this run.
    suppressed: int = 0
    #: Notifications (this run's or older) still undelivered `OVERDUE_AFTER` after queueing.
    overdue: int = 0
    problems: list[str] = field(default_factory=list)

    def mark(self) -> tuple[int, int, int, int, int, int]:
        """Where the summary stands, for `rewind` (what a batch adds: results, problems and
        counts)."""
        return (
            len(self.results),
            len(self.problems),
            self.firing,
            self.resolved,
            self.errors,
            self.suppressed,
        )

    def rewind(self, mark: tuple[int, int, int, int, int, int]) -> None:
        """Take back what was added since `mark` (a write that is issued again)."""
        results, problems, self.firing, self.resolved, self.errors, self.suppressed = mark
        del self.results[results:]
        del self.problems[problems:]

    @property
    def ok(self) -> bool:
        """The exit-code rule (0 when ok, else 1): every due alert evaluated, no notification
        failed for good, none undelivered for `OVERDUE_AFTER` (15 minutes) or more.

        A notification only waiting for its retry (a 429 with Retry-After, a 503) is not a
        failure while it is younger than that: a rate limit must not fail every cron run.
        """
        failed = self.notifications.failed
        return not (self.problems or self.errors or failed or self.overdue)

    def as_json(self) -> dict[str, Any]:
        return {
            "evaluated": len(self.results),
            "results": AlertResult.all_as_json(self.results),
            "notifications": self.notifications.as_json(),
            "overdue_notifications": self.overdue,
        }
