"""`alerts import dbt`: a manifest from a real `dbt parse` and the project's sources.yml become
freshness alerts that, synced and evaluated against PostgreSQL tables loaded like the ones
`dbt source freshness` judged, say the same tables are stale with the same severities."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, text

from datamantri_alerts.importers.dbt import alerts_document, read_manifest, read_sources_yml
from tests.conftest import PG_ADMIN_URL, REPO_ROOT, Cli, require_service

PROJECT = REPO_ROOT / "tests" / "fixtures" / "dbt_project"
MANIFEST = PROJECT / "target" / "manifest.json"
DBT_RESULTS = PROJECT / "target" / "sources.json"
ENV = "DBT_DBT_FIXTURE_WAREHOUSE_URL"

#: What dbt-core 1.11 resolved for the fixture project (see models/sources.yml).
EXPECTED_CONFIGS = {
    "dbt freshness: shop.orders": {
        "schema": "raw_shop",
        "table": "orders",
        "timestamp_column": "_loaded_at",
        "warn_after": {"count": 12, "period": "hour"},
        "error_after": {"count": 24, "period": "hour"},
    },
    "dbt freshness: shop.customers": {  # table warn_after over the source's; error inherited
        "schema": "raw_shop",
        "table": "customers",
        "timestamp_column": "updated_at",
        "warn_after": {"count": 6, "period": "hour"},
        "error_after": {"count": 24, "period": "hour"},
        "filter": "status <> 'deleted'",
    },
    "dbt freshness: shop.order_lines": {  # the identifier, exactly
        "schema": "raw_shop",
        "table": "Order Lines",
        "timestamp_column": "_loaded_at",
        "warn_after": {"count": 12, "period": "hour"},
        "error_after": {"count": 24, "period": "hour"},
    },
    "dbt freshness: crm.accounts": {
        "schema": "crm",
        "table": "accounts",
        "timestamp_column": "synced_at",
        "error_after": {"count": 30, "period": "minute"},
    },
    "dbt freshness: crm.contacts": {
        "schema": "crm",
        "table": "contacts",
        "timestamp_column": "modified_at",
        "warn_after": {"count": 2, "period": "day"},
    },
}


def _import(cli: Cli, *args: str) -> tuple[dict[str, Any], str]:
    result = cli("import", "dbt", *args)
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.stdout), result.stderr


def _configs(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        a["name"]: {k: v for k, v in a["condition_config"].items() if k != "datasource_id"}
        for a in document["alerts"]
    }


def test_manifest_from_a_real_dbt_parse(cli: Cli, tmp_path: Path) -> None:
    document, stderr = _import(cli, str(MANIFEST))
    path = tmp_path / "alerts.yaml"
    path.write_text(cli("import", "dbt", str(MANIFEST)).stdout)
    assert cli("db", "upgrade").exit_code == 0
    validated = cli("validate", str(path))
    assert validated.exit_code == 0, validated.output
    # Valid as written; the only thing left to the user is where to send notifications.
    assert validated.stderr.count("can never notify") == len(EXPECTED_CONFIGS)
    assert document["datasources"] == [
        {
            "id": "dbt-dbt_fixture_warehouse",
            "name": "dbt dbt_fixture_warehouse",
            "url": "${" + ENV + "}",
        }
    ]
    assert _configs(document) == EXPECTED_CONFIGS
    assert {a["condition_config"]["datasource_id"] for a in document["alerts"]} == {
        "dbt-dbt_fixture_warehouse"
    }
    assert all(a["condition_type"] == "freshness" for a in document["alerts"])
    # freshness: null (events) and no freshness at all (notes) are told, not imported.
    assert "shop.events: no freshness configured" in stderr
    assert "crm.notes: no freshness configured" in stderr


@pytest.mark.parametrize("target", ["models", "models/sources.yml"])
def test_sources_yml_resolves_like_dbt(cli: Cli, target: str) -> None:
    """The project's own .yml, read without dbt, gives what dbt put into the manifest."""
    document, _ = _import(cli, str(PROJECT / target))
    assert _configs(document) == EXPECTED_CONFIGS
    assert document["datasources"][0]["url"] == "${DBT_WAREHOUSE_URL}"


def test_datasource_option_uses_an_existing_one(cli: Cli, tmp_path: Path) -> None:
    missing = cli("import", "dbt", str(MANIFEST), "--datasource", "wh")
    assert missing.exit_code == 2
    assert "no data source with id 'wh'" in missing.stderr
    assert missing.stdout == ""

    added = cli("datasources", "add", "wh", "--name", "Warehouse", "--url", "${WH_URL}")
    assert added.exit_code == 0, added.output
    document, _ = _import(cli, str(MANIFEST), "--datasource", "wh")
    assert "datasources" not in document
    assert {a["condition_config"]["datasource_id"] for a in document["alerts"]} == {"wh"}
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump(document))
    synced = cli("sync", str(path), "--json")
    assert synced.exit_code == 0, synced.output
    assert sorted(c["name"] for c in synced.json()["changes"]) == sorted(EXPECTED_CONFIGS)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "malformed JSON at line 1"),
        ('{"nodes": {}}', "not a dbt manifest"),
    ],
)
def test_bad_manifest_exit_2(cli: Cli, tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(content)
    result = cli("import", "dbt", str(path))
    assert result.exit_code == 2
    assert problem in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_missing_path_and_bad_period_exit_2(cli: Cli, tmp_path: Path) -> None:
    gone = cli("import", "dbt", str(tmp_path / "nope.json"))
    assert gone.exit_code == 2 and "file not found" in gone.stderr
    bad = tmp_path / "sources.yml"
    bad.write_text(
        "sources:\n  - name: s\n    freshness: {warn_after: {count: 1, period: week}}\n"
        "    tables: [{name: t, loaded_at_field: ts}]\n"
    )
    result = cli("import", "dbt", str(bad))
    assert result.exit_code == 2
    assert "sources.yml: sources[0].freshness.warn_after: period must be minute" in result.stderr


# --------------------------------------------------------------------------- dbt's rules


def _read(tmp_path: Path, yml: str) -> dict[str, dict[str, Any]]:
    path = tmp_path / "sources.yml"
    path.write_text(textwrap.dedent(yml))
    result = alerts_document(read_sources_yml([path]), datasource_id="wh")
    return _configs(result.document) | {"warnings": result.warnings}  # type: ignore[dict-item]


def test_inheritance_overrides_and_null(tmp_path: Path) -> None:
    found = _read(
        tmp_path,
        """
        sources:
          - name: s
            schema: raw
            loaded_at_field: loaded_at
            freshness:
              warn_after: {count: 1, period: hour}
              error_after: {count: 2, period: hour}
              filter: "a = 1"
            tables:
              - name: inherits
              - name: count_only             # a count without a period overrides nothing
                freshness: {error_after: {count: 5}}
              - name: no_warn                # a threshold set to null is dropped
                freshness: {warn_after: null}
              - name: filter_override
                freshness: {filter: "b = 2"}
              - name: switched_off
                freshness: null
              - name: no_field               # a table's null loaded_at_field wins
                loaded_at_field: null
              - name: in_config              # dbt 1.10+ `config:` freshness, table level
                config:
                  freshness: {warn_after: {count: 3, period: day}}
        """,
    )
    one_hour, two_hours = {"count": 1, "period": "hour"}, {"count": 2, "period": "hour"}
    base = {"schema": "raw", "timestamp_column": "loaded_at", "filter": "a = 1"}
    assert found["dbt freshness: s.inherits"] == {
        **base,
        "table": "inherits",
        "warn_after": one_hour,
        "error_after": two_hours,
    }
    assert found["dbt freshness: s.count_only"]["error_after"] == two_hours
    assert "warn_after" not in found["dbt freshness: s.no_warn"]
    assert found["dbt freshness: s.no_warn"]["error_after"] == two_hours
    assert found["dbt freshness: s.filter_override"]["filter"] == "b = 2"
    assert found["dbt freshness: s.in_config"]["warn_after"] == {"count": 3, "period": "day"}
    assert "dbt freshness: s.switched_off" not in found
    assert "dbt freshness: s.no_field" not in found
    warnings = found["warnings"]
    assert any(w.startswith("s.switched_off: no freshness") for w in warnings)  # type: ignore[union-attr]
    assert any(w.startswith("s.no_field: no loaded_at_field") for w in warnings)  # type: ignore[union-attr]


def test_names_as_the_database_knows_them(tmp_path: Path) -> None:
    found = _read(
        tmp_path,
        """
        sources:
          - name: S
            quoting: {identifier: false}
            freshness: {warn_after: {count: 1, period: hour}}
            tables:
              - name: Folded                 # unquoted: PostgreSQL folds to lower case
                loaded_at_field: LoadedAt
              - name: Exact
                quoting: {identifier: true}
                loaded_at_field: '"Loaded At"'
              - name: expression             # not a column: read through a query
                loaded_at_field: "ts::timestamptz"
        """,
    )
    assert found["dbt freshness: S.Folded"] | {} == {
        "schema": "S",
        "table": "folded",
        "timestamp_column": "loadedat",
        "warn_after": {"count": 1, "period": "hour"},
    }
    assert found["dbt freshness: S.Exact"]["table"] == "Exact"
    assert found["dbt freshness: S.Exact"]["timestamp_column"] == "Loaded At"
    assert found["dbt freshness: S.expression"] == {
        "query": 'select *, ts::timestamptz as dbt_loaded_at from "S"."expression"',
        "timestamp_column": "dbt_loaded_at",
        "warn_after": {"count": 1, "period": "hour"},
    }


def test_sources_yml_reading_matches_a_real_dbt_parse_of_the_rules() -> None:
    """Every table of fixtures/dbt_rules, read from its .yml, resolves as dbt-core resolved it."""
    rules = REPO_ROOT / "tests" / "fixtures" / "dbt_rules"
    manifest = read_manifest(json.loads((rules / "target" / "manifest.json").read_text()))
    from_yml = {t.label: t for t in read_sources_yml([rules / "models" / "sources.yml"])}
    assert len(manifest) == len(from_yml) == 11
    for table in manifest:
        mine = from_yml[table.label]
        assert (mine.freshness, mine.loaded_at_field, mine.schema, mine.identifier) == (
            table.freshness,
            table.loaded_at_field,
            table.schema,
            table.identifier,
        ), table.label
        assert mine.quoting.get("identifier") == table.quoting.get("identifier"), table.label


def test_disabled_sources_in_a_manifest_are_left_out() -> None:
    manifest = json.loads(MANIFEST.read_text())
    node = manifest["sources"]["source.shop.shop.orders"]
    node["config"]["enabled"] = False
    names = {t.label for t in read_manifest(manifest)}
    assert "shop.orders" not in names and "shop.customers" in names


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def fixture_warehouse() -> Iterator[tuple[str, datetime]]:
    """A scratch PostgreSQL database loaded by the fixture's seed.sql relative to now.

    Returns (URL, the `now` the data was loaded relative to)."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = f"dbt_import_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    now = datetime.now(UTC).replace(microsecond=0)
    seed = (PROJECT / "seed.sql").read_text()
    seed = seed.replace(":now", f"timestamp '{now.replace(tzinfo=None).isoformat(' ')}'")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(seed)
    engine.dispose()
    try:
        yield url, now
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("source", ["manifest", "sources.yml"])
def test_synced_and_evaluated_they_agree_with_dbt_source_freshness(
    cli: Cli, tmp_path: Path, fixture_warehouse: tuple[str, datetime], source: str
) -> None:
    url, now = fixture_warehouse
    path = MANIFEST if source == "manifest" else PROJECT / "models"
    imported = cli("import", "dbt", str(path))
    assert imported.exit_code == 0, imported.output
    alerts_yaml = tmp_path / "alerts.yaml"
    alerts_yaml.write_text(imported.stdout)
    env = {ENV: url, "DBT_WAREHOUSE_URL": url}

    synced = cli("sync", str(alerts_yaml), env=env)
    assert synced.exit_code == 0, synced.output
    evaluated = cli("evaluate", "--all", "--json", env=env)
    assert evaluated.exit_code == 0, evaluated.output
    ours = {r["name"]: r for r in evaluated.json()["results"]}

    dbt = json.loads(DBT_RESULTS.read_text())
    seeded_at = datetime.fromisoformat((PROJECT / "seeded_at.txt").read_text().strip()).replace(
        tzinfo=UTC
    )
    expected = {
        "pass": ("ok", None),
        "warn": ("firing", "warning"),
        "error": ("firing", "critical"),
    }
    assert len(ours) == len(dbt["results"]) == 5
    for item in dbt["results"]:
        name = "dbt freshness: " + item["unique_id"].split(".", 2)[2]
        outcome, severity = expected[item["status"]]
        assert ours[name]["outcome"] == outcome, (name, ours[name]["summary"])
        if severity is not None:
            assert ours[name]["severity"] == severity, name
    # The newest values are the ones dbt read, relative to when each database was loaded.
    with_values = json.loads(cli("list", "--json").stdout)
    assert len(with_values) == 5
    history = cli("history", "--json").json()
    for episode in history:
        dbt_item = next(
            r
            for r in dbt["results"]
            if episode["alert_name"].endswith(r["unique_id"].split(".", 2)[2])
        )
        ours_newest = datetime.fromisoformat(episode["details"]["newest_value"])
        dbt_newest = datetime.fromisoformat(dbt_item["max_loaded_at"])
        assert ours_newest - now == dbt_newest - seeded_at, episode["alert_name"]
    assert len(history) == 4  # every stale table opened an episode; accounts is fresh
