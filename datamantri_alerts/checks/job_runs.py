"""Runs of pipelines and dashboard refreshes, from wherever the job's `runs` says they live.

- `recorded`: `job_runs` rows written by `alerts runs record` / `alerts runs wrap`.
- `sql`: a query on a data source returning runs with columns `status`, `started_at`,
  `finished_at` and optionally `error` and `run_id`/`id`, in any order. The product wraps it,
  `SELECT * FROM (query) AS runs`, keeps finished runs (status not NULL and not mapped to
  `running`), orders them by `coalesce(finished_at, started_at)` descending (NULLs last) and
  limits them at the source; a top-level LIMIT of the query itself is dropped. Status values
  are mapped to success/failed/running by `status_map` (defaults cover Airflow, Dagster, dbt);
  naive timestamps are read in `timestamp_timezone` (default UTC), see `checks.instants`.
- `dbt`: a `run_results.json` artifact; the invocation it describes is one run, failed when a
  node has status `error`, `fail` or `runtime error`.

Also the shared evaluation of pipeline_failure and dashboard_failure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from datamantri_alerts.checks.base import CannotEvaluate, CheckContext, Outcome
from datamantri_alerts.checks.instants import read_instants
from datamantri_alerts.checks.values import iso, parse_timestamp, truncate, zone_named

if TYPE_CHECKING:
    from datamantri_alerts.checks.sources import SourceConnection

JobKind = Literal["pipeline", "dashboard"]
RunStatus = Literal["success", "failed", "running"]

#: Status values orchestrators write, compared case-insensitively; a NULL status is a run or task
#: that has not finished (Airflow's `none` state). `running` means "not a finished outcome": such
#: rows are skipped, never counted. Sources: Airflow 2/3 DagRunState and TaskInstanceState,
#: Dagster DagsterRunStatus, dbt RunStatus/TestStatus (run_results.json), common in-house values.
DEFAULT_STATUS_MAP: dict[RunStatus, list[str]] = {
    "success": [
        "success",
        "succeeded",
        "successful",
        "ok",
        "passed",
        "pass",
        "completed",
        "done",
        "skipped",  # Airflow/dbt: nothing failed (the task or node was not needed)
        "warn",  # dbt: a test at warn severity; the run did not fail
    ],
    "failed": [
        "failed",
        "failure",
        "fail",
        "error",
        "errored",
        "runtime error",
        "upstream_failed",
        "shutdown",  # older Airflow releases: the task was killed externally
        "canceled",
        "cancelled",
        "timeout",
        "timed_out",
        "killed",
    ],
    "running": [
        "running",
        "queued",
        "scheduled",
        "started",
        "starting",
        "not_started",
        "in_progress",
        "pending",
        "up_for_retry",
        "up_for_reschedule",
        "restarting",
        "deferred",
        "canceling",
        "managed",
        "none",
        "no_status",
        "removed",  # Airflow: the task is no longer in the DAG
    ],
}

#: dbt node statuses that make the invocation failed (run_results.json, all schema versions).
DBT_FAILED_STATUSES = {"error", "fail", "runtime error"}

#: sqlglot's name for each SQLAlchemy dialect whose queries we may rewrite.
_SQLGLOT_DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "sqlite": "sqlite"}
_LIMIT_WORD = re.compile(r"\b(limit|offset|fetch)\b", re.IGNORECASE)


@dataclass
class Run:
    status: RunStatus
    started_at: datetime | None
    finished_at: datetime | None
    run_id: str | None = None
    error: str | None = None
    exit_code: int | None = None

    @property
    def ended_at(self) -> datetime | None:
        return self.finished_at or self.started_at

    def as_details(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "status": self.status,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }
        if self.exit_code is not None:
            out["exit_code"] = self.exit_code
        if self.error:
            out["error"] = truncate(self.error)
        return out


@dataclass(frozen=True)
class JobInfo:
    kind: JobKind
    id: str
    name: str
    runs: dict[str, Any]

    @property
    def label(self) -> str:
        return self.id if self.name in ("", self.id) else f"{self.name} ({self.id})"


def load_job(ctx: CheckContext, kind: JobKind, job_id: str) -> JobInfo:
    from datamantri_alerts.store.models import Dashboard, Pipeline

    model = Pipeline if kind == "pipeline" else Dashboard
    with ctx.session_factory() as session:
        row = session.get(model, job_id)
        if row is None:
            raise CannotEvaluate(f"{kind} {job_id!r} does not exist")
        return JobInfo(kind, row.id, row.name, dict(row.runs or {"source": "recorded"}))


def finished_runs(ctx: CheckContext, job: JobInfo, limit: int, timeout: float) -> list[Run]:
    """The newest `limit` finished (success or failed) runs, newest first."""
    source = job.runs.get("source", "recorded")
    if source == "recorded":
        return _recorded_runs(ctx, job, limit)
    if source == "sql":
        return _sql_runs(ctx, job, limit, timeout)
    if source == "dbt":
        return _dbt_runs(job)[:limit]
    raise CannotEvaluate(f"{job.kind} {job.id!r} has an unknown runs source {source!r}")


def _recorded_runs(ctx: CheckContext, job: JobInfo, limit: int) -> list[Run]:
    from sqlalchemy import func, select

    from datamantri_alerts.store.models import JobRun

    ended = func.coalesce(JobRun.finished_at, JobRun.started_at, JobRun.created_at)
    query = (
        select(JobRun)
        .where(
            JobRun.job_kind == job.kind,
            JobRun.job_id == job.id,
            JobRun.status.in_(("success", "failed")),
        )
        .order_by(ended.desc(), JobRun.id.desc())
        .limit(limit)
    )
    with ctx.session_factory() as session:
        rows = list(session.scalars(query))
        return [
            Run(
                status="failed" if row.status == "failed" else "success",
                started_at=row.started_at,
                finished_at=row.finished_at or row.started_at or row.created_at,
                run_id=str(row.id),
                error=row.error,
                exit_code=row.exit_code,
            )
            for row in rows
        ]


def _status_lookup(custom: dict[str, list[str]] | None) -> dict[str, RunStatus]:
    lookup: dict[str, RunStatus] = {}
    for status, values in DEFAULT_STATUS_MAP.items():
        for value in values:
            lookup[value] = status
    for status, values in (custom or {}).items():
        if status not in ("success", "failed", "running"):
            continue
        for value in values:
            lookup[str(value).strip().lower()] = status  # type: ignore[assignment]
    return lookup


def _sql_runs(ctx: CheckContext, job: JobInfo, limit: int, timeout: float) -> list[Run]:
    from datamantri_alerts.checks.sources import SourceError, load_datasource, open_source

    datasource_id = job.runs.get("datasource_id")
    query = job.runs.get("query")
    if not datasource_id or not query:
        raise CannotEvaluate(
            f"{job.kind} {job.id!r}: runs.source sql needs datasource_id and query"
        )
    lookup = _status_lookup(job.runs.get("status_map"))
    unfinished = sorted(value for value, status in lookup.items() if status == "running")
    try:
        naive_zone = zone_named(str(job.runs.get("timestamp_timezone") or "UTC"))
    except ValueError as exc:
        raise CannotEvaluate(f"{job.kind} {job.id!r}: runs.timestamp_timezone: {exc}") from None
    source = load_datasource(ctx, datasource_id)
    with open_source(source, timeout, query_bound=timeout, pool=ctx.sources) as conn:
        user_query = without_top_level_limit(query, conn.dialect)
        statement = finished_runs_statement(user_query, unfinished, limit)
        try:
            result = conn.execute(statement, bound=timeout, max_rows=limit)
        except SourceError as exc:
            if not exc.cancelled:
                _explain_failure(conn, user_query, job, timeout)
            raise
        columns = [c.lower() for c in result.columns]
        _require_columns(columns, result.columns, job)
        index = {name: columns.index(name) for name in columns}
        try:
            instants = read_instants(
                conn, result, [index["started_at"], index["finished_at"]], naive_zone, bound=timeout
            )
        except ValueError as exc:
            raise CannotEvaluate(f"the runs query of {job.kind} {job.id!r}: {exc}") from None
    id_column = next((c for c in ("run_id", "id") if c in index), None)
    runs: list[Run] = []
    for row, (started, finished) in zip(result.rows, instants, strict=True):
        raw_status = row[index["status"]]
        if raw_status is None:
            continue  # not finished (the statement already leaves these out)
        status = lookup.get(str(raw_status).strip().lower())
        if status is None:
            raise CannotEvaluate(
                f"the runs query of {job.kind} {job.id!r} returned status {raw_status!r}, which "
                "is not mapped to success/failed/running (add it to runs.status_map)"
            )
        if status == "running":
            continue
        error = row[index["error"]] if "error" in index else None
        runs.append(
            Run(
                status=status,
                started_at=started,
                finished_at=finished or started,
                run_id=str(row[index[id_column]]) if id_column else None,
                error=str(error) if error is not None else None,
            )
        )
    return runs[:limit]


def without_top_level_limit(query: str, dialect: str) -> str:
    """The query without its own top-level ORDER BY / LIMIT / OFFSET, when it has a LIMIT.

    A user's `order by start_date desc limit 20` keeps only the queued runs when 20 runs have
    no start date yet (PostgreSQL sorts NULLs first); the product orders and limits finished
    runs itself. Parsed with sqlglot in the source's dialect; a query it cannot parse, or one
    without a top-level LIMIT/OFFSET, is returned unchanged (byte for byte).
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    text = query.strip().rstrip(";").strip()
    read = _SQLGLOT_DIALECTS.get(dialect)
    if read is None or _LIMIT_WORD.search(text) is None:
        return text
    try:
        parsed = sqlglot.parse(text, read=read)
    except SqlglotError:
        return text
    if len(parsed) != 1 or not isinstance(parsed[0], exp.Query):
        return text
    tree = parsed[0]
    if not any(tree.args.get(key) for key in ("limit", "offset", "fetch")):
        return text
    for key in ("order", "limit", "offset", "fetch"):
        tree.set(key, None)
    try:
        return tree.sql(dialect=read)
    except SqlglotError:
        return text


def finished_runs_statement(query: str, unfinished: list[str], limit: int) -> Any:
    """`SELECT * FROM (query) AS runs` keeping finished runs, newest first, at most `limit`.

    Rows whose status is NULL or one of `unfinished` (lower case) are left out at the source;
    the rest are ordered by `coalesce(finished_at, started_at)` descending with NULLs last
    (written portably: MySQL has no NULLS LAST).
    """
    from sqlalchemy import String, case, cast, column, func, literal_column, select, text

    # The newline ends a trailing `-- comment` of the query before the closing parenthesis.
    runs = (
        text(query + "\n")
        .columns(column("status"), column("started_at"), column("finished_at"))
        .subquery("runs")
    )
    status = func.lower(func.trim(cast(runs.c.status, String)))
    ended = func.coalesce(runs.c.finished_at, runs.c.started_at)
    return (
        select(literal_column("*"))
        .select_from(runs)
        .where(runs.c.status.is_not(None), status.not_in(unfinished))
        .order_by(case((ended.is_(None), 1), else_=0), ended.desc())
        .limit(limit)
    )


def _require_columns(columns: list[str], shown: list[str], job: JobInfo) -> None:
    missing = [c for c in ("status", "started_at", "finished_at") if c not in columns]
    if missing:
        raise CannotEvaluate(
            f"the runs query of {job.kind} {job.id!r} returns no column {', '.join(missing)} "
            f"(it returned: {', '.join(shown) or 'nothing'})"
        )


def _explain_failure(conn: SourceConnection, query: str, job: JobInfo, timeout: float) -> None:
    """After the wrapped runs statement failed, raise the error that says why, if another does.

    The user's query as written comes first: a write or a second statement is then refused
    with the read-only reason (wrapped, it would only be a syntax error), and a query that
    is itself wrong shows its own error. Then the contract columns the query lacks are named.
    Returns when neither explains the failure (the caller raises the original error).
    """
    import contextlib

    from sqlalchemy import literal_column, select, text

    from datamantri_alerts.checks.sources import SourceError

    def rollback() -> None:
        with contextlib.suppress(Exception):
            conn.connection.rollback()  # PostgreSQL refuses statements in a failed transaction

    rollback()
    try:
        conn.execute(query, bound=timeout, max_rows=0)
    except SourceError as exc:
        if not exc.cancelled:
            raise
    rollback()
    probe = (
        select(literal_column("*"))
        .select_from(text(f"({query}\n) AS runs"))
        .where(literal_column("1") == literal_column("0"))
    )
    try:
        result = conn.execute(probe, bound=timeout, max_rows=0)
    except SourceError:
        return
    _require_columns([c.lower() for c in result.columns], result.columns, job)


def _dbt_runs(job: JobInfo) -> list[Run]:
    from datamantri_alerts.errors import RuntimeFailure
    from datamantri_alerts.secrets import resolve_env

    raw_path = job.runs.get("path")
    if not raw_path:
        raise CannotEvaluate(f"{job.kind} {job.id!r}: runs.source dbt needs a path")
    try:
        path = Path(resolve_env(str(raw_path))).expanduser()
    except RuntimeFailure as exc:
        raise CannotEvaluate(f"{job.kind} {job.id!r}: {exc}") from None
    if path.is_dir():
        path = path / "run_results.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CannotEvaluate(f"dbt run results not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CannotEvaluate(f"cannot read dbt run results {path}: {exc}") from None
    return [parse_run_results(document, str(path))]


def parse_run_results(document: Any, where: str = "run_results.json") -> Run:
    """One dbt invocation as a run (dbt's documented run-results artifact, v1 to v6)."""
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise CannotEvaluate(f"{where} is not a dbt run_results.json (no results list)")
    metadata = document.get("metadata") or {}
    try:
        generated = parse_timestamp(metadata.get("generated_at"))
    except ValueError:
        generated = None
    starts: list[datetime] = []
    ends: list[datetime] = []
    failures: list[str] = []
    for node in document["results"]:
        if not isinstance(node, dict):
            continue
        status = str(node.get("status") or "").strip().lower()
        for step in node.get("timing") or []:
            try:
                started = parse_timestamp(step.get("started_at"))
                completed = parse_timestamp(step.get("completed_at"))
            except (ValueError, AttributeError):
                continue
            if started:
                starts.append(started)
            if completed:
                ends.append(completed)
        if status in DBT_FAILED_STATUSES:
            message = node.get("message") or status
            failures.append(f"{node.get('unique_id', '?')}: {message}")
    finished = generated or (max(ends) if ends else None)
    started_at = min(starts) if starts else None
    elapsed = document.get("elapsed_time")
    if started_at is None and finished is not None and isinstance(elapsed, int | float):
        started_at = finished - timedelta(seconds=float(elapsed))
    return Run(
        status="failed" if failures else "success",
        started_at=started_at,
        finished_at=finished,
        run_id=metadata.get("invocation_id"),
        error="; ".join(failures) if failures else None,
    )


def evaluate_job(
    ctx: CheckContext,
    kind: JobKind,
    job_id: str,
    last_n: int,
    max_hours_without_run: float | None,
    timeout: float,
) -> Outcome:
    """Firing when one of the last N finished runs failed, or none finished recently enough."""
    job = load_job(ctx, kind, job_id)
    runs = finished_runs(ctx, job, last_n, timeout)
    now = ctx.clock.now()
    run_word = "refresh run" if kind == "dashboard" else "run"
    details: dict[str, Any] = {
        f"{kind}_id": job.id,
        "runs_source": job.runs.get("source", "recorded"),
        "runs": [run.as_details() for run in runs],
    }
    last = runs[0].ended_at if runs else None
    details["last_finished_at"] = iso(last)

    failed = [run for run in runs if run.status == "failed"]
    if failed:
        newest = failed[0]
        reason = f": {truncate(newest.error, 200)}" if newest.error else ""
        if newest.exit_code is not None and not newest.error:
            reason = f": exit code {newest.exit_code}"
        outcome = Outcome.firing(
            f"{job.label}: {len(failed)} of the last {len(runs)} finished {run_word}s failed"
            f" (latest failure {iso(newest.ended_at) or 'at an unknown time'}{reason})",
            **details,
            failed_runs=[run.as_details() for run in failed],
        )
        return outcome

    if max_hours_without_run is not None:
        limit = timedelta(hours=max_hours_without_run)
        if last is None or now - last > limit:
            since = f"last one {iso(last)}" if last else "none recorded"
            return Outcome.firing(
                f"{job.label}: no {run_word} finished in the last {max_hours_without_run:g} h "
                f"({since})",
                **details,
                max_hours_without_run=max_hours_without_run,
            )
    if not runs:
        return Outcome.ok(f"{job.label}: no finished {run_word}s yet", **details)
    return Outcome.ok(
        f"{job.label}: the last {len(runs)} finished {run_word}"
        f"{'s' if len(runs) != 1 else ''} succeeded",
        **details,
    )
