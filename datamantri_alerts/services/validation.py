"""`alerts validate`: check alert files before anything touches a store.

Every problem of every file is reported, one line each, with its field path in the form
`fieldpath` writes (`alerts[3].recipients.email[1]`). References between entities are checked
across the files given; references to a store's entities only when the caller passes its ids.
Warnings name alerts that can never notify (`services/reachability.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamantri_alerts.errors import InputError
from datamantri_alerts.fieldpath import field_path


@dataclass(frozen=True)
class Finding:
    """One problem or warning: the file, the field path in it ("" for the whole file), what."""

    file: str
    field: str
    message: str

    def line(self) -> str:
        """`FILE: path: message`."""
        return ": ".join(part for part in (self.file, self.field, self.message) if part)

    def as_json(self) -> dict[str, str]:
        return {"file": self.file, "field": self.field, "message": self.message}


@dataclass
class ValidationReport:
    files: list[str]
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "valid": not self.errors,
            "errors": [e.as_json() for e in self.errors],
            "warnings": [w.as_json() for w in self.warnings],
        }


def validate_files(
    paths: Sequence[Path],
    *,
    store_ids: Mapping[str, set[str]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ValidationReport:
    """Validate each file; `store_ids` (per kind) are entities a store already has.

    Never raises for a problem in a file: each becomes a Finding of the report."""
    from datamantri_alerts.documents import load_document
    from datamantri_alerts.schema import ParsedFile, collect_file
    from datamantri_alerts.services.entities import file_ids, file_reference_problems
    from datamantri_alerts.services.reachability import alert_warnings

    report = ValidationReport(files=[str(p) for p in paths])
    parsed_files: list[tuple[str, ParsedFile]] = []
    single: set[str] = set()  # files holding one alert, as `alerts create --from-file` takes
    for path in paths:
        name = str(path)
        try:
            document = load_document(path)
        except InputError as exc:
            message = str(exc).removeprefix(f"{path.name}: ")
            report.errors.append(Finding(name, exc.field or "", message))
            continue
        if _is_single_alert(document):
            single.add(name)
            document = {"alerts": [document]}
        parsed, problems = collect_file(document)
        report.errors += [Finding(name, p.field or "", p.message) for p in problems]
        if parsed is not None:
            parsed_files.append((name, parsed))

    known: dict[str, set[str]] = {k: set(v) for k, v in (store_ids or {}).items()}
    for _, parsed in parsed_files:
        for kind, ids in file_ids(parsed).items():
            known.setdefault(kind, set()).update(ids)
    for name, parsed in parsed_files:
        report.errors += [
            Finding(name, p.field or "", p.message) for p in file_reference_problems(parsed, known)
        ]
        for n, definition in enumerate(parsed.alerts):
            where = parsed.path("alerts", n)
            report.warnings += [
                Finding(name, field_path(where, w.field), w.message)
                for w in alert_warnings(definition, environ)
            ]
    # A one-alert file's paths are the alert's own (`recipients.email[1]`), as `create` prints.
    for findings in (report.errors, report.warnings):
        findings[:] = [
            Finding(f.file, _strip_first_item(f.field), f.message) if f.file in single else f
            for f in findings
        ]
    return report


def _is_single_alert(document: Any) -> bool:
    """A mapping with an alert's `condition_type` and none of the file's sections."""
    return (
        isinstance(document, Mapping)
        and "condition_type" in document
        and not {"alerts", "datasources", "pipelines", "dashboards"} & set(document)
    )


def _strip_first_item(path: str) -> str:
    return path.removeprefix("alerts[0]").removeprefix(".")


def store_entity_ids(url: str) -> dict[str, set[str]]:
    """The data source, pipeline and dashboard ids of the store at url, per kind.

    Read-only: a store that does not exist is an InputError (validate never creates one, nor
    migrates it)."""
    from datamantri_alerts.services.entities import known_ids
    from datamantri_alerts.store.engine import Store, parse_store_url
    from datamantri_alerts.store.migrate import current_revision

    parsed = parse_store_url(url, "--db")
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or not Path(database).expanduser().is_file():
            raise InputError(f"no store at {database or 'memory'}", field="--db")
    store = Store(url)
    try:
        if current_revision(store.engine) is None:
            raise InputError("has no alerts store (create one with `alerts db upgrade`)", "--db")
        with store.session() as session:
            return known_ids(session)
    finally:
        store.dispose()
