"""dbt sources with a freshness config, read from a `manifest.json` or from sources `.yml` files,
turned into `freshness` alerts (a document `alerts sync` accepts).

Pure functions: no store, no network. What dbt does is followed, not re-invented:

- a manifest already holds each source table's resolved `freshness`, `loaded_at_field`,
  `database`, `schema` and `identifier` (`dbt parse` resolved them);
- sources `.yml` files are resolved here the way dbt-core 1.11's source parser does: the
  thresholds of the source, the source's `config:`, the table and the table's `config:` are
  merged in that order, a threshold given as `null` drops it, `freshness: null` on a table turns
  freshness off for it; a table's `loaded_at_field` key (even `null`) wins over the source's;
  `schema` defaults to the source name, `identifier` to the table name;
- a table checked by dbt is one whose merged thresholds have a `count` and a `period`.

Names in SQL: dbt inserts `loaded_at_field` into its query as written, so a plain name is folded
to lower case as PostgreSQL does (and MySQL/SQLite do not mind), a double-quoted one is used
exactly, and an expression (`convert_tz(loaded_at)`, `ts::timestamptz`) becomes a `query` over
the relation. `schema` and `identifier` are used exactly when dbt quotes them (dbt-postgres'
default), folded to lower case when the source's `quoting` turns quoting off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamantri_alerts.errors import InputError

#: Alert names: `dbt freshness: <source>.<table>`.
NAME_PREFIX = "dbt freshness: "
PERIODS = ("minute", "hour", "day")

_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_QUOTED_NAME = re.compile(r'^"((?:[^"]|"")+)"$')


@dataclass(frozen=True)
class SourceTable:
    """One dbt source table, as dbt resolved (or would resolve) it."""

    source_name: str
    table_name: str
    database: str | None
    schema: str
    identifier: str
    loaded_at_field: str | None
    loaded_at_query: str | None
    #: `{"warn_after": {count, period} | None, "error_after": ..., "filter": str | None}`;
    #: None when freshness is off for the table.
    freshness: dict[str, Any] | None
    #: dbt's quoting of schema and identifier (None: the adapter default, quoted).
    quoting: dict[str, bool | None] = field(default_factory=dict)
    #: The relation as dbt renders it (`"db"."schema"."table"`), when a manifest gave it.
    relation_name: str | None = None
    origin: str = ""

    @property
    def label(self) -> str:
        return f"{self.source_name}.{self.table_name}"


@dataclass
class ImportResult:
    """The alerts document and what a person should know about what was left out."""

    document: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def alert_count(self) -> int:
        return len(self.document.get("alerts", []))


# --------------------------------------------------------------------------- reading


def read_path(path: Path) -> list[SourceTable]:
    """Source tables from a `manifest.json`, a sources `.yml` file, or a folder of them.

    Raises InputError (one line naming the path) for a missing, unreadable or malformed file.
    """
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
        files = [p for p in files if "target" not in p.relative_to(path).parts[:-1]]
        if not files:
            raise InputError(f"{path} holds no .yml files with dbt sources")
        return read_sources_yml(files)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    if path.suffix.lower() == ".json":
        return read_manifest(_load_json(path), origin=str(path))
    return read_sources_yml([path])


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path.name}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def read_manifest(manifest: Any, *, origin: str = "manifest.json") -> list[SourceTable]:
    """The source tables of a parsed dbt manifest (`target/manifest.json`, schema v12 and
    earlier ones with the same `sources` shape), in the manifest's order; disabled ones left out.
    """
    if not isinstance(manifest, Mapping) or not isinstance(manifest.get("sources"), Mapping):
        raise InputError(f"{origin}: not a dbt manifest (no `sources` mapping)")
    tables = []
    for unique_id, node in manifest["sources"].items():
        if not isinstance(node, Mapping):
            raise InputError(f"{origin}: source {unique_id!r} is not a mapping")
        config = node.get("config") or {}
        if config.get("enabled") is False:
            continue
        try:
            tables.append(
                SourceTable(
                    source_name=str(node["source_name"]),
                    table_name=str(node["name"]),
                    database=node.get("database"),
                    schema=str(node["schema"]),
                    identifier=str(node.get("identifier") or node["name"]),
                    loaded_at_field=node.get("loaded_at_field"),
                    loaded_at_query=node.get("loaded_at_query"),
                    freshness=_threshold_dict(node.get("freshness")),
                    quoting=dict(node.get("quoting") or {}),
                    relation_name=node.get("relation_name"),
                    origin=str(node.get("original_file_path") or origin),
                )
            )
        except KeyError as exc:
            raise InputError(f"{origin}: source {unique_id!r} has no {exc.args[0]!r}") from None
    return tables


def read_sources_yml(paths: Iterable[Path]) -> list[SourceTable]:
    """The source tables declared in dbt properties files, resolved as dbt resolves them.

    Files without a `sources:` list are skipped (a models folder also holds model properties).
    """
    from datamantri_alerts.documents import load_document

    tables: list[SourceTable] = []
    for path in paths:
        document = load_document(path)
        if not isinstance(document, Mapping) or "sources" not in document:
            continue
        sources = document["sources"]
        if not isinstance(sources, list):
            raise InputError(f"{path.name}: `sources` must be a list")
        for index, source in enumerate(sources):
            if not isinstance(source, Mapping) or not source.get("name"):
                raise InputError(f"{path.name}: sources[{index}] has no name")
            tables.extend(_resolve_source(source, f"{path.name}: sources[{index}]", str(path)))
    return tables


def _resolve_source(source: Mapping[str, Any], where: str, origin: str) -> list[SourceTable]:
    source_config = source.get("config") or {}
    if source_config.get("enabled") is False:
        return []
    out = []
    for index, table in enumerate(source.get("tables") or []):
        if not isinstance(table, Mapping) or not table.get("name"):
            raise InputError(f"{where}.tables[{index}] has no name")
        table_config = table.get("config") or {}
        if table_config.get("enabled") is False:
            continue
        freshness = merge_freshness(
            _unparsed_threshold(source, "freshness", f"{where}.freshness"),
            _config_threshold(source_config, f"{where}.config.freshness"),
            _unparsed_threshold(table, "freshness", f"{where}.tables[{index}].freshness"),
            _config_threshold(table_config, f"{where}.tables[{index}].config.freshness"),
        )
        if "loaded_at_field" in table or table_config.get("loaded_at_field") is not None:
            loaded_at_field = table.get("loaded_at_field") or table_config.get("loaded_at_field")
        else:
            loaded_at_field = source.get("loaded_at_field") or source_config.get("loaded_at_field")
        loaded_at_query = table.get("loaded_at_query") or table_config.get("loaded_at_query")
        if loaded_at_query is None and "loaded_at_field" not in table:
            loaded_at_query = source.get("loaded_at_query") or source_config.get("loaded_at_query")
        quoting = {**(source.get("quoting") or {}), **(table.get("quoting") or {})}
        out.append(
            SourceTable(
                source_name=str(source["name"]),
                table_name=str(table["name"]),
                database=source.get("database"),
                schema=str(source.get("schema") or source["name"]),
                identifier=str(table.get("identifier") or table["name"]),
                loaded_at_field=loaded_at_field,
                loaded_at_query=loaded_at_query,
                freshness=_threshold_dict(freshness),
                quoting={k: v for k, v in quoting.items() if v is not None},
                origin=origin,
            )
        )
    return out


# dbt's FreshnessThreshold as a dict: {"warn_after": Time | None, "error_after": Time | None,
# "filter": str | None}, Time = {"count": int | None, "period": str | None}. An empty Time (no
# count or period) is "not set" and falsy, as in dbt.

_EMPTY = object()


def _time(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InputError(f"must be {{count, period}}, got {value!r}", field=where)
    period = value.get("period")
    if period is not None and period not in PERIODS:
        raise InputError(f"period must be minute, hour or day, got {period!r}", field=where)
    return {"count": value.get("count"), "period": period}


def _threshold(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InputError(f"must be a mapping or null, got {value!r}", field=where)
    return {
        "warn_after": _time(value["warn_after"], f"{where}.warn_after")
        if "warn_after" in value
        else {"count": None, "period": None},
        "error_after": _time(value["error_after"], f"{where}.error_after")
        if "error_after" in value
        else {"count": None, "period": None},
        "filter": value.get("filter"),
    }


def _unparsed_threshold(node: Mapping[str, Any], key: str, where: str) -> dict[str, Any] | None:
    # A key left out is dbt's default (an empty threshold); `null` is None.
    return _threshold(node[key], where) if key in node else _threshold({}, where)


def _config_threshold(config: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    return _threshold(config.get("freshness", {}), where)


def _time_set(value: dict[str, Any] | None) -> bool:
    return bool(value) and value["count"] is not None and value["period"] is not None  # type: ignore[index]


def _threshold_set(value: dict[str, Any] | None) -> bool:
    return value is not None and (_time_set(value["warn_after"]) or _time_set(value["error_after"]))


def _merge_time(base: dict[str, Any] | None, update: dict[str, Any] | None) -> Any:
    if _time_set(base) and _time_set(update):
        assert base is not None and update is not None
        return {k: update[k] if update[k] is not None else base[k] for k in ("count", "period")}
    if update is None:
        return None
    return update if _time_set(update) else base


def merge_freshness(*thresholds: dict[str, Any] | None) -> dict[str, Any] | None:
    """dbt-core's `merge_source_freshness`: later thresholds override earlier ones field by
    field, one level deep into warn_after / error_after; a None (`freshness: null`) drops all."""
    if not thresholds:
        return None
    merged = thresholds[0]
    for update in thresholds[1:]:
        if merged is not None and update is not None:
            result = {k: update[k] if update[k] is not None else merged[k] for k in merged}
            result["error_after"] = _merge_time(merged["error_after"], update["error_after"])
            result["warn_after"] = _merge_time(merged["warn_after"], update["warn_after"])
            merged = result
        elif merged is None and _threshold_set(update):
            merged = update
        else:
            merged = None
    return merged


def _threshold_dict(value: Any) -> dict[str, Any] | None:
    """A resolved threshold with only the parts that are set; None when nothing is."""
    if not isinstance(value, Mapping) or not _threshold_set(dict(value)):
        return None
    out: dict[str, Any] = {}
    for key in ("warn_after", "error_after"):
        part = value.get(key)
        if _time_set(part):
            out[key] = {"count": int(part["count"]), "period": str(part["period"])}
    if value.get("filter"):
        out["filter"] = str(value["filter"])
    return out


# --------------------------------------------------------------------------- writing


def datasource_for(database: str | None) -> tuple[str, str]:
    """(data source id, environment variable) for a dbt database: `dbt-warehouse`,
    `DBT_WAREHOUSE_URL`."""
    base = re.sub(r"[^A-Za-z0-9_.:\-]+", "-", database or "warehouse").strip("-.:_") or "warehouse"
    env = re.sub(r"[^A-Za-z0-9]+", "_", database or "warehouse").strip("_").upper() or "WAREHOUSE"
    return f"dbt-{base}"[:200], f"DBT_{env}_URL"


def sql_name(name: str, quoted: bool | None) -> str:
    """A schema or identifier as the database knows it: exact when dbt quotes it (None is
    dbt-postgres' default: quoted), folded to lower case when it does not."""
    return name if quoted is not False else name.lower()


def loaded_at_column(expression: str) -> str | None:
    """The column a dbt `loaded_at_field` names, or None when it is an expression.

    dbt writes the field into its query as is: a plain name is folded to lower case by
    PostgreSQL, a double-quoted one is exact.
    """
    text = expression.strip()
    if _PLAIN_NAME.match(text):
        return text.lower()
    quoted = _QUOTED_NAME.match(text)
    if quoted:
        return quoted.group(1).replace('""', '"')
    return None


def _relation(table: SourceTable, schema: str, identifier: str) -> str:
    if table.relation_name:
        return table.relation_name
    return ".".join('"' + part.replace('"', '""') + '"' for part in (schema, identifier))


def freshness_alert(table: SourceTable, datasource_id: str) -> tuple[dict[str, Any] | None, str]:
    """The `freshness` alert for one source table, or (None, why it is left out)."""
    if table.freshness is None:
        return None, f"{table.label}: no freshness configured (or freshness: null)"
    schema = sql_name(table.schema, table.quoting.get("schema"))
    identifier = sql_name(table.identifier, table.quoting.get("identifier"))
    config: dict[str, Any] = {"datasource_id": datasource_id}
    if table.loaded_at_field:
        column = loaded_at_column(table.loaded_at_field)
        if column is not None:
            config.update(schema=schema, table=identifier, timestamp_column=column)
        else:
            relation = _relation(table, schema, identifier)
            config.update(
                query=f"select *, {table.loaded_at_field} as dbt_loaded_at from {relation}",
                timestamp_column="dbt_loaded_at",
            )
    elif table.loaded_at_query:
        return None, (
            f"{table.label}: loaded_at_query is not imported (write a freshness alert with "
            "`query` and `timestamp_column` for it)"
        )
    else:
        return None, (
            f"{table.label}: no loaded_at_field (dbt would ask the warehouse's metadata, which "
            "is not read here)"
        )
    for key in ("warn_after", "error_after", "filter"):
        if key in table.freshness:
            config[key] = table.freshness[key]
    alert = {
        "name": f"{NAME_PREFIX}{table.label}",
        "description": f"dbt source {table.label} ({table.origin})" if table.origin else "",
        "condition_type": "freshness",
        "condition_config": config,
    }
    return alert, ""


def alerts_document(
    tables: Iterable[SourceTable], *, datasource_id: str | None = None
) -> ImportResult:
    """The alerts YAML document (as a dict) for the source tables with a freshness config.

    With `datasource_id`, every alert uses that (existing) data source; without, one data source
    per dbt database is declared with a `${DBT_<DATABASE>_URL}` placeholder.
    """
    datasources: dict[str, dict[str, Any]] = {}
    alerts: list[dict[str, Any]] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for table in tables:
        if datasource_id is not None:
            target = datasource_id
        else:
            target, env = datasource_for(table.database)
            datasources.setdefault(
                target,
                {
                    "id": target,
                    "name": f"dbt {table.database or 'warehouse'}",
                    "url": "${" + env + "}",
                },
            )
        alert, why = freshness_alert(table, target)
        if alert is None:
            warnings.append(why)
            continue
        if alert["name"] in seen:
            warnings.append(f"{table.label}: declared twice, the first one is kept")
            continue
        seen.add(alert["name"])
        alerts.append(alert)
    used = {a["condition_config"]["datasource_id"] for a in alerts}
    document: dict[str, Any] = {}
    if datasource_id is None:
        document["datasources"] = [d for key, d in datasources.items() if key in used]
    document["alerts"] = alerts
    return ImportResult(document, warnings)
