"""Data sources, pipelines and dashboards: the things alerts watch."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datamantri_alerts.clock import Clock
from datamantri_alerts.errors import InputError, NotFoundError
from datamantri_alerts.fieldpath import field_path
from datamantri_alerts.schema import (
    DashboardSpec,
    DataSourceSpec,
    JobSpec,
    ParsedFile,
    PipelineSpec,
)
from datamantri_alerts.store.models import Alert, Dashboard, DataSource, Pipeline

ENTITY_MODELS: dict[str, type[DataSource] | type[Pipeline] | type[Dashboard]] = {
    "datasource": DataSource,
    "pipeline": Pipeline,
    "dashboard": Dashboard,
}
ENTITY_LABELS = {"datasource": "data source", "pipeline": "pipeline", "dashboard": "dashboard"}


def get_entity(session: Session, kind: str, entity_id: str) -> Any:
    row = session.get(ENTITY_MODELS[kind], entity_id)
    if row is None:
        raise NotFoundError(f"no {ENTITY_LABELS[kind]} with id {entity_id!r}")
    return row


def list_entities(session: Session, kind: str) -> list[Any]:
    model = ENTITY_MODELS[kind]
    return list(session.scalars(select(model).order_by(model.id)))


def existing_ids(session: Session, kind: str) -> set[str]:
    model = ENTITY_MODELS[kind]
    return set(session.scalars(select(model.id)))


def check_references(
    refs: Iterable[tuple[str, str]],
    known: dict[str, set[str]],
    field: str = "condition_config",
) -> None:
    """Every (kind, id) must name an entity in `known`; the first that does not raises."""
    problems = reference_problems(refs, known, field)
    if problems:
        raise problems[0]


def reference_problems(
    refs: Iterable[tuple[str, str]],
    known: dict[str, set[str]],
    field: str = "condition_config",
) -> list[InputError]:
    """One problem per (kind, id) not in `known`, at `field.<kind>_id`."""
    return [
        InputError(
            f"{ENTITY_LABELS[kind]} {entity_id!r} does not exist "
            f"(add it with `alerts {kind}s add` or in the YAML file)",
            field=field_path(field, f"{kind}_id"),
        )
        for kind, entity_id in refs
        if entity_id not in known.get(kind, set())
    ]


def file_reference_problems(parsed: ParsedFile, known: dict[str, set[str]]) -> list[InputError]:
    """References of a file's entities and alerts that name nothing in `known`.

    Paths are the file's: `pipelines[1].runs.datasource_id`, `alerts[3].condition_config...`."""
    problems: list[InputError] = []
    for section in ("pipelines", "dashboards"):
        for n, spec in enumerate(getattr(parsed, section)):
            where = field_path(parsed.path(section, n), "runs")
            problems += reference_problems(spec.references(), known, where)
    alerts = [(parsed.path("alerts", n), d.references) for n, d in enumerate(parsed.alerts)]
    for where, refs in sorted(
        [*alerts, *parsed.unchecked_references], key=lambda item: _index(item[0])
    ):
        problems += reference_problems(refs, known, field_path(where, "condition_config"))
    return problems


def _index(path: str) -> int:
    """n of `alerts[n]`."""
    return int(path.rpartition("[")[2].rstrip("]"))


def file_ids(parsed: ParsedFile) -> dict[str, set[str]]:
    """The ids of the entities a file declares, per kind."""
    return {
        "datasource": {spec.id for spec in parsed.datasources},
        "pipeline": {spec.id for spec in parsed.pipelines},
        "dashboard": {spec.id for spec in parsed.dashboards},
    }


def known_ids(session: Session) -> dict[str, set[str]]:
    return {kind: existing_ids(session, kind) for kind in ENTITY_MODELS}


def datasource_fields(spec: DataSourceSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "url": spec.url,
        "freshness": spec.freshness.model_dump(exclude_none=True) if spec.freshness else None,
    }


def job_fields(spec: JobSpec) -> dict[str, Any]:
    return {"name": spec.name, "runs": spec.runs.model_dump(exclude_none=True)}


def entity_fields(kind: str, spec: Any) -> dict[str, Any]:
    return datasource_fields(spec) if kind == "datasource" else job_fields(spec)


def stored_entity_fields(kind: str, row: Any) -> dict[str, Any]:
    if kind == "datasource":
        return {"name": row.name, "url": row.url, "freshness": row.freshness}
    return {"name": row.name, "runs": row.runs}


def add_entity(session: Session, kind: str, spec: Any, clock: Clock) -> Any:
    model = ENTITY_MODELS[kind]
    if session.get(model, spec.id) is not None:
        raise InputError(f"a {ENTITY_LABELS[kind]} with id {spec.id!r} already exists", "id")
    if isinstance(spec, JobSpec):
        check_references(spec.references(), known_ids(session), field="runs")
    now = clock.now()
    row = model(id=spec.id, created_at=now, updated_at=now, **entity_fields(kind, spec))
    session.add(row)
    return row


def referencing_alerts(session: Session, kind: str, entity_id: str) -> list[str]:
    key = f"{kind}_id"
    names = []
    for name, config in session.execute(select(Alert.name, Alert.condition_config)):
        if isinstance(config, dict) and config.get(key) == entity_id:
            names.append(name)
    if kind == "datasource":
        for model in (Pipeline, Dashboard):
            for job_id, runs in session.execute(select(model.id, model.runs)):
                if isinstance(runs, dict) and runs.get("datasource_id") == entity_id:
                    names.append(f"{model.__tablename__[:-1]} {job_id}")
    return names


def remove_entity(session: Session, kind: str, entity_id: str) -> None:
    row = get_entity(session, kind, entity_id)
    users = referencing_alerts(session, kind, entity_id)
    if users:
        raise InputError(
            f"{ENTITY_LABELS[kind]} {entity_id!r} is still used by: {', '.join(sorted(users))}",
            field="id",
        )
    session.delete(row)


SPEC_MODELS: dict[str, type[DataSourceSpec] | type[PipelineSpec] | type[DashboardSpec]] = {
    "datasource": DataSourceSpec,
    "pipeline": PipelineSpec,
    "dashboard": DashboardSpec,
}
