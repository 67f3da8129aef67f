"""Pydantic models of alert definitions, watched entities and the YAML file.

Validation turns every problem into one `InputError` line naming the field, so the CLI can print
it and exit 2 before anything is written. Numbers, times and text fields use the bounded types of
`limits.py`; a raw document is first checked by `inputs.check_document` (nesting depth, control
characters in any string, at any depth). Reading files is `documents.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from datamantri_alerts.errors import InputError, first_of
from datamantri_alerts.fieldpath import field_path, from_loc, key_path
from datamantri_alerts.inputs import check_document
from datamantri_alerts.limits import AwareTime, Count, Line, Minutes, Text
from datamantri_alerts.secrets import REDACTED, has_env_ref

Severity = Literal["info", "warning", "critical"]
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,199}$"

#: Keys `show --json` prints that a definition may carry but that are not user-settable.
READ_ONLY_ALERT_KEYS = frozenset(
    {
        "id",
        "state",
        "last_evaluated_at",
        "last_triggered_at",
        "last_notified_at",
        "trigger_count",
        "created_at",
        "updated_at",
        "mute_reason",
        "last_summary",
        "next_due_at",
        "flapping",
    }
)


def format_validation_error(exc: ValidationError, prefix: str = "") -> InputError:
    """The first problem of a pydantic error as one line: `field.path: problem`."""
    return first_of(validation_problems(exc, prefix))


def validation_problems(exc: ValidationError, prefix: str = "") -> list[InputError]:
    """Every problem of a pydantic error, one `InputError` each (paths as `fieldpath` writes)."""
    problems: list[InputError] = []
    for err in exc.errors(include_url=False):
        kind = err["type"]
        if kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "missing":
            message = "required field is missing"
        else:
            message = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
            if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
                message = f"{message} (got {err.get('input')!r})"
        problems.append(InputError(message, field=from_loc(err["loc"], prefix) or None))
    return problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --------------------------------------------------------------------------- watched entities


def _valid_zone(value: str | None) -> str | None:
    from datamantri_alerts.checks.values import valid_zone_name

    return None if value is None else valid_zone_name(value)


class FreshnessSpec(_Strict):
    table: Line = Field(min_length=1, max_length=300)
    column: Line = Field(min_length=1, max_length=300)
    #: IANA zone of a naive `column` (no offset stored); None: UTC.
    timestamp_timezone: Line | None = None

    _zone = field_validator("timestamp_timezone")(_valid_zone)


def _validate_source_url(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    if value == REDACTED or REDACTED in value or has_env_ref(value):
        return value
    if value.startswith(("http://", "https://")):
        from urllib.parse import urlsplit

        if not urlsplit(value).hostname:
            raise ValueError(f"{value!r} has no host")
        return value
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(value)
    except (ArgumentError, ValueError):
        raise ValueError(
            "not a SQLAlchemy database URL (dialect://user:password@host/db) nor http(s)://"
        ) from None
    return value


class DataSourceSpec(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: Line = Field(min_length=1, max_length=300)
    url: Line
    freshness: FreshnessSpec | None = None

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        return _validate_source_url(value)


class RecordedRuns(_Strict):
    source: Literal["recorded"] = "recorded"


class SqlRuns(_Strict):
    source: Literal["sql"]
    datasource_id: str = Field(pattern=ID_PATTERN)
    query: Text = Field(min_length=1)
    status_map: dict[Literal["success", "failed", "running"], list[Line]] | None = None
    #: IANA zone of naive `started_at`/`finished_at` values; None: UTC.
    timestamp_timezone: Line | None = None

    _zone = field_validator("timestamp_timezone")(_valid_zone)


class DbtRuns(_Strict):
    source: Literal["dbt"]
    path: Line = Field(min_length=1)


RunsSpec = Annotated[RecordedRuns | SqlRuns | DbtRuns, Field(discriminator="source")]


class JobSpec(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: Line = Field(min_length=1, max_length=300)
    runs: RunsSpec = Field(default_factory=RecordedRuns)

    def references(self) -> list[tuple[str, str]]:
        if isinstance(self.runs, SqlRuns):
            return [("datasource", self.runs.datasource_id)]
        return []


class PipelineSpec(JobSpec):
    pass


class DashboardSpec(JobSpec):
    pass


# --------------------------------------------------------------------------- alerts


class AlertSpec(_Strict):
    """An alert as a person writes it; `condition_config` and `recipients` are checked per type
    and per channel by `validate_alert`."""

    name: Line = Field(min_length=1, max_length=300)
    #: Optional stable identity (`etl-failure`): `sync` matches on it before the name.
    key: str | None = Field(default=None, pattern=ID_PATTERN)
    description: Text = Field(default="", max_length=5_000)
    condition_type: Line = Field(min_length=1)
    condition_config: dict[str, Any] = Field(default_factory=dict)
    channels: list[Line] = Field(default_factory=list)
    recipients: dict[str, Any] = Field(default_factory=dict)
    is_active: bool = True
    severity: Severity | None = None
    repeat_interval_minutes: Minutes = 240
    notify_on_resolve: bool = True
    pending_evaluations: Count = 1
    muted_until: AwareTime | None = None
    #: Earlier names of this alert: `sync` renames the stored alert instead of replacing it.
    renamed_from: list[Annotated[Line, Field(min_length=1, max_length=300)]] = Field(
        default_factory=list
    )
    labels: dict[str, str | int | float | bool] | None = None
    mute_during: list[str] | None = None
    flap_detection: dict[str, Any] | None = None

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        from datamantri_alerts.services.signal.silences import LABEL_NAME

        for key, item in (value or {}).items():
            if not LABEL_NAME.match(key):
                raise ValueError(f"{key!r} is not a label name (letters, digits, _ . -)")
            if len(str(item)) > 500:
                raise ValueError(f"the value of {key!r} is longer than 500 characters")
        return value

    @field_validator("mute_during")
    @classmethod
    def _windows(cls, value: list[str] | None) -> list[str] | None:
        from datamantri_alerts.services.signal.windows import NAME_PATTERN

        for name in value or []:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"{name!r} is not a maintenance window name")
        return list(dict.fromkeys(value)) if value else None


class AlertDefinition(BaseModel):
    """A validated alert: config normalised by its type, recipients by their channel."""

    name: str
    key: str | None = None
    description: str
    condition_type: str
    condition_config: dict[str, Any]
    channels: list[str]
    recipients: dict[str, Any]
    is_active: bool
    severity: Severity
    repeat_interval_minutes: int
    notify_on_resolve: bool
    pending_evaluations: int
    muted_until: datetime | None
    #: None when the alert has none (so a file without them matches a store without them).
    labels: dict[str, str] | None = None
    mute_during: list[str] | None = None
    flap_detection: dict[str, Any] | None = None
    #: (kind, id) of the entities the config names.
    references: list[tuple[str, str]] = Field(default_factory=list, exclude=True)
    #: Warnings a person should see (e.g. a retired Teams connector URL).
    warnings: list[str] = Field(default_factory=list, exclude=True)
    #: Earlier names (`sync` keeps the stored alert, and its history, across a rename).
    renamed_from: list[str] = Field(default_factory=list, exclude=True)
    #: The fields the document gave (a mute set from the CLI survives a sync that omits it).
    explicit: frozenset[str] = Field(default_factory=frozenset, exclude=True)

    def stored_fields(self) -> dict[str, Any]:
        return self.model_dump(exclude={"references", "warnings", "explicit", "renamed_from"})


def validate_alert(raw: Any) -> AlertDefinition:
    """Validate one alert document (as written, YAML/JSON-decoded); the first problem raises."""
    checked = collect_alert(raw)
    if checked.problems:
        raise first_of(checked.problems)
    assert checked.definition is not None
    return checked.definition


class AlertCheck(NamedTuple):
    """What `collect_alert` found: the definition (None when there are problems), every
    problem, and the entities its `condition_config` names when that part is valid (so
    references are checked even when another field is wrong)."""

    definition: AlertDefinition | None
    problems: list[InputError]
    references: list[tuple[str, str]]


def collect_alert(raw: Any) -> AlertCheck:
    """Validate one alert document and report every problem found (None when there are any).

    Fields are checked in layers: the alert's own fields, then (when its type is known) its
    `condition_config`, its channels and each recipient; list recipients are checked one item
    at a time, so `recipients.email[1]` names the bad address."""
    from datamantri_alerts.channels import RecipientError, channel_names, get_channel
    from datamantri_alerts.checks import check_types, get_check

    if not isinstance(raw, Mapping):
        message = f"an alert must be a mapping of fields, got {type(raw).__name__}"
        return AlertCheck(None, [InputError(message)], [])
    try:
        check_document(raw)  # nesting and control characters: nothing else is looked at
    except InputError as exc:
        return AlertCheck(None, [exc], [])
    problems: list[InputError] = []
    data = {k: v for k, v in raw.items() if k not in READ_ONLY_ALERT_KEYS}
    spec: AlertSpec | None = None
    try:
        spec = AlertSpec.model_validate(data)
    except ValidationError as exc:
        problems.extend(validation_problems(exc))
    # The layers below look at what was written even when other fields failed, so one pass
    # reports every problem.
    condition_type = data.get("condition_type")
    check = None
    config = None
    if isinstance(condition_type, str) and condition_type.strip():
        try:
            check = get_check(condition_type.strip())
        except KeyError:
            problems.append(
                InputError(
                    f"unknown alert type {condition_type!r} (known: {', '.join(check_types())})",
                    field="condition_type",
                )
            )
    raw_config = data.get("condition_config", {})
    if check is not None and isinstance(raw_config, Mapping):
        try:
            config = check.config_model.model_validate(raw_config)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, "condition_config"))

    channels: list[str] = []
    raw_channels = data.get("channels", [])
    for index, name in enumerate(raw_channels if isinstance(raw_channels, list) else []):
        if not isinstance(name, str):
            continue  # AlertSpec reported it
        name = name.strip().lower()
        if name not in channel_names():
            problems.append(
                InputError(
                    f"unknown channel {name!r} (known: {', '.join(channel_names())})",
                    field=field_path("channels", index),
                )
            )
        elif name not in channels:
            channels.append(name)

    recipients: dict[str, Any] = {}
    rejected: set[str] = set()
    warnings: list[str] = []
    raw_recipients = data.get("recipients", {})
    for key, value in (raw_recipients if isinstance(raw_recipients, Mapping) else {}).items():
        name = str(key).strip().lower()
        if name not in channel_names():
            problems.append(
                InputError(
                    f"unknown channel {key!r} (known: {', '.join(channel_names())})",
                    field=field_path("recipients", key_path(key)),
                )
            )
            continue
        if value is None or value == [] or value == "":
            continue
        if value == REDACTED:
            recipients[name] = REDACTED
            continue
        channel = get_channel(name)
        try:
            recipients[name] = channel.normalize_recipients(value)
        except RecipientError as exc:
            problems.extend(_recipient_problems(channel, name, value, exc))
            rejected.add(name)
            continue
        warnings.extend(channel.recipient_warnings(recipients[name]))
    for name in channels:
        channel = get_channel(name)
        if name not in recipients and name not in rejected and channel.fallback_env is None:
            problems.append(
                InputError(
                    f"channel {name!r} is selected but has no recipients",
                    field=field_path("recipients", name),
                )
            )
    if problems or spec is None or check is None or config is None:
        return AlertCheck(None, problems, config.references() if config is not None else [])

    flap_detection = None
    if spec.flap_detection is not None:
        from datamantri_alerts.services.signal.flapping import FlapDetection

        try:
            flap_detection = FlapDetection.model_validate(spec.flap_detection).model_dump(
                exclude_defaults=True
            )
        except ValidationError as exc:
            return AlertCheck(None, validation_problems(exc, "flap_detection"), config.references())

    definition = AlertDefinition(
        name=spec.name,
        key=spec.key,
        description=spec.description,
        condition_type=spec.condition_type,
        condition_config=config.model_dump(mode="json", exclude_unset=True),
        channels=channels,
        recipients=recipients,
        is_active=spec.is_active,
        severity=spec.severity or check.default_severity,
        repeat_interval_minutes=spec.repeat_interval_minutes,
        notify_on_resolve=spec.notify_on_resolve,
        pending_evaluations=spec.pending_evaluations,
        muted_until=spec.muted_until,
        renamed_from=[n for n in spec.renamed_from if n != spec.name],
        labels={k: _label_value(v) for k, v in (spec.labels or {}).items()} or None,
        mute_during=spec.mute_during or None,
        flap_detection=flap_detection or None,
        references=config.references(),
        warnings=warnings,
        explicit=frozenset(data),
    )
    return AlertCheck(definition, [], definition.references)


def _recipient_problems(channel: Any, name: str, value: Any, error: Exception) -> list[InputError]:
    """A bad recipients entry: for a list, one problem per bad item, at its index."""
    from datamantri_alerts.channels import RecipientError

    if isinstance(value, list) and len(value) > 1:
        found = []
        for index, item in enumerate(value):
            try:
                channel.normalize_recipients([item])
            except RecipientError as exc:
                found.append(InputError(str(exc), field=field_path("recipients", name, index)))
        if found:
            return found
    if isinstance(value, list) and len(value) == 1:
        return [InputError(str(error), field=field_path("recipients", name, 0))]
    return [InputError(str(error), field=field_path("recipients", name))]


def _label_value(value: Any) -> str:
    """A label value as text (YAML `true` reads as "true", as written)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


# --------------------------------------------------------------------------- the YAML file


class AlertsFile(_Strict):
    datasources: list[DataSourceSpec] = Field(default_factory=list)
    pipelines: list[PipelineSpec] = Field(default_factory=list)
    dashboards: list[DashboardSpec] = Field(default_factory=list)
    alerts: list[dict[str, Any]] = Field(default_factory=list)
    maintenance_windows: list[dict[str, Any]] = Field(default_factory=list)


class ParsedFile(BaseModel):
    datasources: list[DataSourceSpec]
    pipelines: list[PipelineSpec]
    dashboards: list[DashboardSpec]
    alerts: list[AlertDefinition]
    #: Per section, the index in the file of each item above (items with problems are left out
    #: by `collect_file`, so the n-th alert is not always `alerts[n]`).
    positions: dict[str, list[int]] = Field(default_factory=dict, exclude=True)
    #: (path, references) of alerts left out for other problems whose config names entities.
    unchecked_references: list[tuple[str, list[tuple[str, str]]]] = Field(
        default_factory=list, exclude=True
    )

    def path(self, section: str, n: int) -> str:
        """The field path of the n-th kept item of section: `alerts[3]`."""
        indexes = self.positions.get(section)
        return field_path(section, indexes[n] if indexes else n)

    maintenance_windows: list[Any] = Field(default_factory=list)  # WindowSpec


def _written(items: list[Any], key: str) -> list[str | None]:
    """Each item's `key` as written (stripped), None where it is not a string."""
    return [
        item[key].strip() if isinstance(item, Mapping) and isinstance(item.get(key), str) else None
        for item in items
    ]


def _duplicates(items: Iterable[str | None], what: str, field: str) -> list[InputError]:
    seen: set[str] = set()
    problems = []
    for index, item in enumerate(items):
        if item is None:
            continue
        if item in seen:
            problems.append(
                InputError(f"duplicate {what} {item!r}", field=field_path(field, index))
            )
        seen.add(item)
    return problems


def _rename_problems(items: list[Any]) -> list[InputError]:
    """`renamed_from` may not name another alert of the file, nor an old name twice."""
    own_names = _written(items, "name")
    names = {n for n in own_names if n is not None}
    claimed: set[str] = set()
    problems = []
    for index, item in enumerate(items):
        old_names = item.get("renamed_from") if isinstance(item, Mapping) else None
        if not isinstance(old_names, list):
            continue
        for n, old in enumerate(old_names):
            if not isinstance(old, str) or old.strip() == own_names[index]:
                continue
            where = field_path("alerts", index, "renamed_from", n)
            old = old.strip()
            if old in names:
                problems.append(InputError(f"{old!r} is also an alert of this file", field=where))
            elif old in claimed:
                problems.append(InputError(f"{old!r} is named by two alerts", field=where))
            claimed.add(old)
    return problems


def validate_file(raw: Any) -> ParsedFile:
    """Validate a whole alerts file; the first problem raises (`collect_file` lists them all)."""
    parsed, problems = collect_file(raw)
    if problems:
        raise first_of(problems)
    assert parsed is not None
    return parsed


def collect_file(raw: Any) -> tuple[ParsedFile | None, list[InputError]]:
    """Validate a whole alerts file and report every problem.

    Each entity and each alert is checked on its own, so a bad item does not hide the next one;
    paths are `datasources[0].url`, `alerts[3].recipients.email[1]`. The ParsedFile holds the
    items that passed (None when the file is not a mapping): usable only when there are no
    problems, but enough to check references between the good items."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        return None, [
            InputError(
                "the file must be a mapping with datasources, pipelines, dashboards and alerts"
            )
        ]
    try:
        check_document(raw)  # nesting and control characters: nothing else is looked at
    except InputError as exc:
        return None, [exc]
    problems: list[InputError] = []
    sections: dict[str, list[Any]] = {}
    for key in raw:
        if key not in AlertsFile.model_fields:
            problems.append(InputError("unknown field", field=field_path(key_path(key))))
    for key in AlertsFile.model_fields:
        value = raw.get(key)
        if value is None:
            sections[key] = []
        elif not isinstance(value, list):
            problems.append(InputError("must be a list", field=key))
            sections[key] = []
        else:
            sections[key] = value
    specs: dict[str, list[Any]] = {}
    positions: dict[str, list[int]] = {key: [] for key in sections}
    for key, model in (
        ("datasources", DataSourceSpec),
        ("pipelines", PipelineSpec),
        ("dashboards", DashboardSpec),
    ):
        specs[key] = []
        for index, item in enumerate(sections[key]):
            try:
                specs[key].append(model.model_validate(item))
                positions[key].append(index)
            except ValidationError as exc:
                problems.extend(validation_problems(exc, field_path(key, index)))
    for key, what in (
        ("datasources", "data source id"),
        ("pipelines", "pipeline id"),
        ("dashboards", "dashboard id"),
    ):
        problems += _duplicates(_written(sections[key], "id"), what, key)
    alerts: list[AlertDefinition] = []
    unchecked: list[tuple[str, list[tuple[str, str]]]] = []
    for index, item in enumerate(sections["alerts"]):
        checked = collect_alert(item)
        problems.extend(p.under("alerts", index) for p in checked.problems)
        if checked.definition is not None:
            alerts.append(checked.definition)
            positions["alerts"].append(index)
        elif checked.references:
            unchecked.append((field_path("alerts", index), checked.references))
    problems += _duplicates(_written(sections["alerts"], "name"), "alert name", "alerts")
    problems += _duplicates(_written(sections["alerts"], "key"), "alert key", "alerts")
    problems += _rename_problems(sections["alerts"])
    from datamantri_alerts.services.signal.windows import validate_window

    windows = []
    for index, item in enumerate(sections["maintenance_windows"]):
        try:
            windows.append(validate_window(item, field_path("maintenance_windows", index)))
        except InputError as exc:
            problems.append(exc)
    problems += _duplicates(
        _written(sections["maintenance_windows"], "name"),
        "maintenance window",
        "maintenance_windows",
    )
    parsed = ParsedFile(
        maintenance_windows=windows,
        datasources=specs["datasources"],
        pipelines=specs["pipelines"],
        dashboards=specs["dashboards"],
        alerts=alerts,
        positions=positions,
        unchecked_references=unchecked,
    )
    return parsed, problems
