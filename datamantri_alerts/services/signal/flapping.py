"""Flap detection, Nagios style: weighted percent state change over the last evaluations.

The alert keeps its recent outcomes as a string (`alerts.flap_history`, oldest first, one
character per evaluation: `F` condition met, `O` condition not met; errors are not recorded,
they say nothing about the condition). Each change between neighbours counts with a weight
rising linearly from 0.75 (oldest) to 1.25 (newest), and the sum is divided by the possible
changes in a full window (`window - 1`), as Nagios does: 0 % for a steady alert, ~100 % for one
that flips at every evaluation. An alert starts flapping at `high` percent or more and stops
below `low` (hysteresis).

Defaults (window 21, high 20 %, low 5 %) need no configuration: a condition flipping at every
evaluation is flapping at its fifth evaluation (4 changes, 24 %), while one real incident
(2 changes, at most 12.5 %) or two incidents a couple of hours apart never are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from operator import ne
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_WINDOW = 21
DEFAULT_HIGH = 20.0
DEFAULT_LOW = 5.0

#: Weights of the oldest and the newest change.
LOW_WEIGHT = 0.75
HIGH_WEIGHT = 1.25

OUTCOME_MARKS = {"firing": "F", "ok": "O"}


class FlapDetection(BaseModel):
    """The optional per-alert `flap_detection` mapping: percentages, window in evaluations.

    `enabled: false` also turns off the one-evaluation confirmation of a recovery
    (`services.states`), so the alert resolves at its first ok evaluation.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    high: float = Field(default=DEFAULT_HIGH, gt=0, le=100)
    low: float = Field(default=DEFAULT_LOW, ge=0, le=100)
    window: int = Field(default=DEFAULT_WINDOW, ge=3, le=50)

    @model_validator(mode="after")
    def _ordered(self) -> FlapDetection:
        if self.low > self.high:
            raise ValueError("low must not be above high")
        return self


DEFAULTS = FlapDetection()


def settings(raw: Mapping[str, Any] | None) -> FlapDetection:
    """The alert's stored `flap_detection` (validated when written) with defaults filled in."""
    return FlapDetection.model_validate(dict(raw)) if raw else DEFAULTS


def record(history: str, outcome: str, window: int) -> str:
    """`history` with `outcome` appended (errors leave it alone), cut to the last `window`."""
    mark = OUTCOME_MARKS.get(outcome)
    if mark is None:
        return history[-window:]
    return (history + mark)[-window:]


def changes(history: str) -> int:
    """How many times the recorded outcome changed between neighbouring evaluations."""
    return sum(map(ne, history, history[1:]))


def percent_state_change(history: str, window: int) -> float:
    """Weighted percent of state change (0-100) over `history`, the newest change weighing most.

    Weights are placed as if the history filled the window, so a short history (a new alert)
    is never judged more harshly than a full one.
    """
    possible = window - 1
    if possible <= 0:
        return 0.0
    recent = history[-window:]
    if recent.count(recent[:1]) == len(recent):  # steady (most alerts): no change, 0 %
        return 0.0
    offset = window - len(recent)
    step = (HIGH_WEIGHT - LOW_WEIGHT) / max(1, possible - 1)
    total = 0.0
    for i in range(1, len(recent)):
        if recent[i] != recent[i - 1]:
            total += LOW_WEIGHT + (offset + i - 1) * step
    return min(100.0, total / possible * 100.0)


@dataclass(frozen=True)
class Verdict:
    """Flap state after one evaluation: `started`/`stopped` mark the evaluation it changed."""

    flapping: bool
    started: bool
    stopped: bool
    percent: float
    changes: int
    evaluations: int

    def notice(self) -> str:
        """The one line told when flapping starts (and stored as the suppression reason)."""
        return (
            f"flapping: {self.changes} changes in the last {self.evaluations} evaluations; "
            "notifications paused"
        )


def assess(history: str, was_flapping: bool, config: FlapDetection) -> Verdict:
    """Whether an alert with this (already updated) history flaps, given it did before."""
    percent = percent_state_change(history, config.window)
    if not config.enabled:
        flapping = False
    elif was_flapping:
        flapping = percent >= config.low
    else:
        flapping = percent >= config.high
    return Verdict(
        flapping=flapping,
        started=flapping and not was_flapping,
        stopped=was_flapping and not flapping,
        percent=percent,
        changes=changes(history),
        evaluations=len(history),
    )
