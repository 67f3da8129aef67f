"""Benchmark alert type `always_firing`: a check that fires at once (notification fan-out)."""

from __future__ import annotations

from typing import Any, ClassVar

from datamantri_alerts.checks.base import CheckConfig, CheckContext, Outcome


class AlwaysFiringCheck:
    type_name: ClassVar[str] = "always_firing"
    config_model: ClassVar[type[CheckConfig]] = CheckConfig
    default_severity: ClassVar[Any] = "critical"
    description: ClassVar[str] = "fires at once (benchmarks)"

    def evaluate(self, config: CheckConfig, ctx: CheckContext) -> Outcome:
        return Outcome.firing("the benchmark says so", rows=1)


CHECK = AlwaysFiringCheck()
