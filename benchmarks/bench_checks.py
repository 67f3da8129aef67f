"""Benchmark alert type `instant`: a check that returns ok at once (pure evaluator overhead)."""

from __future__ import annotations

from typing import Any, ClassVar

from datamantri_alerts.checks.base import CheckConfig, CheckContext, Outcome


class InstantCheck:
    type_name: ClassVar[str] = "instant"
    config_model: ClassVar[type[CheckConfig]] = CheckConfig
    default_severity: ClassVar[Any] = "warning"
    description: ClassVar[str] = "returns ok at once (benchmarks)"

    def evaluate(self, config: CheckConfig, ctx: CheckContext) -> Outcome:
        return Outcome.ok("fine")


CHECK = InstantCheck()
