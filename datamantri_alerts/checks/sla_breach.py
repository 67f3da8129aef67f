"""sla_breach: past today's expected load time (+ tolerance) and the data is still stale."""

from __future__ import annotations

import re
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from datamantri_alerts.checks.base import CheckConfig, CheckContext, Outcome, Severity

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class SlaBreachConfig(CheckConfig):
    datasource_id: str = Field(min_length=1)
    expected_load_time: str
    tolerance_minutes: int = Field(default=0, ge=0, le=1_440)
    timezone: str = "UTC"
    table: str | None = Field(default=None, min_length=1, max_length=300)
    timestamp_column: str | None = Field(default=None, min_length=1, max_length=300)
    timeout_seconds: float = Field(default=30, gt=0, le=600)

    @field_validator("expected_load_time")
    @classmethod
    def _valid_hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"{value!r} is not a time of day as HH:MM (00:00 to 23:59)")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        return value


class SlaBreachCheck:
    type_name: ClassVar[str] = "sla_breach"
    config_model: ClassVar[type[CheckConfig]] = SlaBreachConfig
    default_severity: ClassVar[Severity] = "critical"
    description: ClassVar[str] = "Data freshness SLA breach"

    def evaluate(self, config: SlaBreachConfig, ctx: CheckContext) -> Outcome:
        raise NotImplementedError  # filled in by the checks work (issue 3)


CHECK = SlaBreachCheck()
