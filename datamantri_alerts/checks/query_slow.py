"""query_slow: a probe query takes too long, or a query on the database has run too long.

Probe mode (`query` set) runs the query, times it and cancels it at `timeout()` (server-side
bound plus a watchdog), so a probe never outlives the check. Active mode lists the queries on
the data source's database running longer than the threshold: PostgreSQL `pg_stat_activity`,
MySQL/MariaDB `information_schema.processlist`, excluding the check's own session.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from datamantri_alerts.checks.base import (
    CannotEvaluate,
    CheckConfig,
    CheckContext,
    Outcome,
    Severity,
)
from datamantri_alerts.checks.values import truncate
from datamantri_alerts.limits import Line, ProbeTimeoutSeconds, Text, ThresholdSeconds

#: How many slow queries go into the details.
MAX_REPORTED_QUERIES = 20

_PG_ACTIVE = """
SELECT pid, usename, EXTRACT(EPOCH FROM (clock_timestamp() - query_start)) AS seconds, query
FROM pg_stat_activity
WHERE state = 'active'
  AND pid <> pg_backend_pid()
  AND datname = current_database()
  AND backend_type = 'client backend'
  AND query_start < clock_timestamp() - make_interval(secs => :threshold)
ORDER BY query_start
"""

# MariaDB has TIME_MS; MySQL only whole seconds in TIME.
_MARIADB_ACTIVE = """
SELECT ID, USER, TIME_MS / 1000.0 AS seconds, INFO
FROM information_schema.PROCESSLIST
WHERE COMMAND IN ('Query', 'Execute')
  AND ID <> CONNECTION_ID()
  AND (DATABASE() IS NULL OR DB = DATABASE())
  AND TIME_MS > :threshold * 1000
ORDER BY TIME_MS DESC
"""

_MYSQL_ACTIVE = """
SELECT ID, USER, TIME AS seconds, INFO
FROM information_schema.PROCESSLIST
WHERE COMMAND IN ('Query', 'Execute')
  AND ID <> CONNECTION_ID()
  AND (DATABASE() IS NULL OR DB = DATABASE())
  AND TIME > :threshold
ORDER BY TIME DESC
"""


class QuerySlowConfig(CheckConfig):
    datasource_id: Line = Field(min_length=1)
    threshold_seconds: ThresholdSeconds
    query: Text | None = Field(default=None, min_length=1)
    #: Probe mode cancels the query at this bound; default: twice the threshold, at least +5 s.
    timeout_seconds: ProbeTimeoutSeconds | None = None

    def timeout(self) -> float:
        if self.timeout_seconds is not None:
            return self.timeout_seconds
        return max(self.threshold_seconds * 2, self.threshold_seconds + 5)


class QuerySlowCheck:
    type_name: ClassVar[str] = "query_slow"
    config_model: ClassVar[type[CheckConfig]] = QuerySlowConfig
    default_severity: ClassVar[Severity] = "warning"
    description: ClassVar[str] = "Slow query"

    def evaluate(self, config: QuerySlowConfig, ctx: CheckContext) -> Outcome:
        from datamantri_alerts.checks.sources import load_datasource

        source = load_datasource(ctx, config.datasource_id)
        if config.query is not None:
            return self._probe(config, source, ctx)
        return self._active(config, source, ctx)

    def _probe(self, config: QuerySlowConfig, source: Any, ctx: CheckContext) -> Outcome:
        from datamantri_alerts.checks.sources import SourceError, open_source

        bound = config.timeout()
        threshold = config.threshold_seconds
        details: dict[str, Any] = {
            "mode": "probe",
            "datasource_id": source.id,
            "query": truncate(config.query),
            "threshold_seconds": threshold,
            "bound_seconds": bound,
        }
        with open_source(source, min(bound, 30.0), query_bound=bound, pool=ctx.sources) as conn:
            try:
                result = conn.execute(config.query or "", bound=bound, keep_rows=False)
            except SourceError as exc:
                if not exc.cancelled:
                    raise
                seconds = float(exc.details.get("duration_seconds") or bound)
                return Outcome.firing(
                    f"probe query on {source.label} still running after {seconds:.1f}s "
                    f"(threshold {threshold:g}s); cancelled",
                    **details,
                    duration_seconds=round(seconds, 3),
                    cancelled=True,
                )
        seconds = result.duration
        details["duration_seconds"] = round(seconds, 3)
        if seconds > threshold:
            return Outcome.firing(
                f"probe query on {source.label} took {seconds:.1f}s (threshold {threshold:g}s)",
                **details,
            )
        return Outcome.ok(
            f"probe query on {source.label} took {seconds:.2f}s (threshold {threshold:g}s)",
            **details,
        )

    def _active(self, config: QuerySlowConfig, source: Any, ctx: CheckContext) -> Outcome:
        from datamantri_alerts.checks.sources import open_source

        threshold = config.threshold_seconds
        timeout = config.timeout()
        with open_source(source, timeout, query_bound=timeout, pool=ctx.sources) as conn:
            if conn.dialect == "postgresql":
                statement = _PG_ACTIVE
            elif conn.dialect == "mysql":
                statement = _MARIADB_ACTIVE if conn.is_mariadb else _MYSQL_ACTIVE
            else:
                raise CannotEvaluate(
                    f"query_slow without a query needs PostgreSQL or MySQL/MariaDB; "
                    f"{source.label} is {conn.dialect} (set `query` to probe instead)"
                )
            result = conn.execute(
                statement, bound=config.timeout(), params={"threshold": threshold}
            )
        slow = [
            {
                "pid": row[0],
                "user": row[1],
                "duration_seconds": round(float(row[2] or 0), 3),
                "query": truncate(row[3]) if row[3] is not None else None,
            }
            for row in result.rows
        ]
        slow.sort(key=lambda q: q["duration_seconds"], reverse=True)
        details: dict[str, Any] = {
            "mode": "active",
            "datasource_id": source.id,
            "threshold_seconds": threshold,
            "slow_query_count": len(slow),
            "slow_queries": slow[:MAX_REPORTED_QUERIES],
        }
        if not slow:
            return Outcome.ok(
                f"no query on {source.label} has run longer than {threshold:g}s", **details
            )
        worst = slow[0]
        others = f" and {len(slow) - 1} more" if len(slow) > 1 else ""
        return Outcome.firing(
            f"query on {source.label} running {worst['duration_seconds']:.1f}s "
            f"(threshold {threshold:g}s) by {worst['user']}: {truncate(worst['query'], 120)}"
            f"{others}",
            **details,
        )


CHECK = QuerySlowCheck()
