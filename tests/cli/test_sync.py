"""`alerts sync` and `alerts export`: configuration as code, round trips without leaks."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT, Cli, dump_store

EXAMPLE = str(REPO_ROOT / "alerts.yaml.example")


def _actions(result_json: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for change in result_json["changes"]:
        counts[change["action"]] = counts.get(change["action"], 0) + 1
    return counts


def test_example_sync_is_idempotent_and_export_round_trips(store_cli: Cli, tmp_path: Path) -> None:
    first = store_cli("sync", EXAMPLE, "--json")
    assert first.exit_code == 0, first.output
    plan = first.json()
    assert plan["applied"] is True
    kinds = {c["kind"] for c in plan["changes"]}
    assert kinds == {"alert", "datasource", "pipeline", "dashboard"}
    assert _actions(plan) == {"create": len(plan["changes"])}
    types = {a["condition_type"] for a in store_cli("list", "--json").json()}
    assert {
        "datasource_failure",
        "pipeline_failure",
        "query_slow",
        "dashboard_failure",
        "sla_breach",
    } <= types

    again = store_cli("sync", EXAMPLE, "--json").json()
    assert _actions(again) == {"unchanged": len(plan["changes"])}

    exported = store_cli("export")
    assert exported.exit_code == 0
    assert "hooks.slack.com/services/YOUR" not in exported.stdout
    assert "<redacted>" in exported.stdout
    assert "${SLACK_WEBHOOK_URL}" in exported.stdout
    out = tmp_path / "out.yaml"
    out.write_text(exported.stdout)
    dry = store_cli("sync", str(out), "--dry-run", "--json").json()
    assert dry["applied"] is False
    assert _actions(dry) == {"unchanged": len(plan["changes"])}
    # Applying the redacted export keeps the stored secret.
    assert store_cli("sync", str(out)).exit_code == 0
    assert (
        "hooks.slack.com/services/YOUR/WEBHOOK/URL" in store_cli("export", "--show-secrets").stdout
    )


def test_dry_run_writes_nothing_and_prune_deletes(
    cli: Cli, sqlite_url: str, tmp_path: Path
) -> None:
    assert cli("sync", EXAMPLE).exit_code == 0
    doc = yaml.safe_load(Path(EXAMPLE).read_text())
    doc["alerts"] = [a for a in doc["alerts"] if a["name"] != "dbt build failures"]
    doc["pipelines"] = [p for p in doc["pipelines"] if p["id"] != "dbt-nightly"]
    doc["alerts"][0]["description"] = "now described"
    smaller = tmp_path / "smaller.yaml"
    smaller.write_text(yaml.safe_dump(doc))

    before = dump_store(sqlite_url)
    dry = cli("sync", str(smaller), "--prune", "--dry-run", "--json").json()
    assert dump_store(sqlite_url) == before
    changes = {(c["kind"], c["name"]): c["action"] for c in dry["changes"]}
    assert changes[("alert", "dbt build failures")] == "delete"
    assert changes[("pipeline", "dbt-nightly")] == "delete"
    assert changes[("alert", "Production DB Connection Check")] == "update"

    # Without --prune nothing is deleted.
    kept = cli("sync", str(smaller), "--json").json()
    assert "delete" not in _actions(kept)
    assert any(a["name"] == "dbt build failures" for a in cli("list", "--json").json())

    # Off a terminal, deleting needs --yes: exit 2, one line, nothing written.
    before = dump_store(sqlite_url)
    refused = cli("sync", str(smaller), "--prune", "--json")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert "error: --prune: would delete 2 items" in refused.stderr
    assert "--yes" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert dump_store(sqlite_url) == before

    pruned = cli("sync", str(smaller), "--prune", "--yes", "--json").json()
    assert _actions(pruned)["delete"] == 2
    names = {a["name"] for a in cli("list", "--json").json()}
    assert "dbt build failures" not in names
    assert "dbt-nightly" not in {p["id"] for p in cli("pipelines", "list", "--json").json()}
    table = cli("sync", str(smaller)).stdout
    assert "unchanged" in table and "no changes" in table


def test_sync_refuses_deleting_an_entity_still_in_use(
    cli: Cli, sqlite_url: str, tmp_path: Path
) -> None:
    assert cli("sync", EXAMPLE).exit_code == 0
    doc = yaml.safe_load(Path(EXAMPLE).read_text())
    doc["pipelines"] = [p for p in doc["pipelines"] if p["id"] != "xyz-789"]
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(doc))
    before = dump_store(sqlite_url)
    result = cli("sync", str(path), "--prune")
    assert result.exit_code == 2
    assert "xyz-789" in result.stderr
    assert dump_store(sqlite_url) == before


def test_datasource_password_round_trip(cli: Cli, tmp_path: Path) -> None:
    url = "postgresql://monitor:S3cret%2Fpw-canary@db.internal:5432/prod"
    assert cli("datasources", "add", "w", "--name", "W", "--url", url).exit_code == 0
    listed = cli("datasources", "list", "--json").json()
    assert "canary" not in str(listed) and listed[0]["url"].startswith("postgresql://monitor:")
    exported = cli("export").stdout
    assert "canary" not in exported and "monitor:<redacted>@db.internal" in exported
    path = tmp_path / "e.yaml"
    path.write_text(exported)
    assert cli("sync", str(path), "--json").json()["changes"][0]["action"] == "unchanged"
    assert url in cli("export", "--show-secrets").stdout


def test_entities_add_remove(cli: Cli) -> None:
    assert cli("datasources", "add", "d1", "--name", "D", "--url", "sqlite:///d.db").exit_code == 0
    assert (
        cli(
            "pipelines",
            "add",
            "p1",
            "--name",
            "P",
            "--runs-source",
            "sql",
            "--datasource",
            "d1",
            "--query",
            "select 1",
        ).exit_code
        == 0
    )
    assert cli("dashboards", "add", "k1", "--name", "K").exit_code == 0
    assert cli("pipelines", "list", "--json").json()[0]["runs"] == {
        "source": "sql",
        "datasource_id": "d1",
        "query": "select 1",
    }
    in_use = cli("datasources", "remove", "d1")
    assert in_use.exit_code == 2 and "p1" in in_use.stderr
    assert cli("pipelines", "remove", "p1").exit_code == 0
    assert cli("datasources", "remove", "d1").exit_code == 0
    assert cli("dashboards", "remove", "k1").exit_code == 0
    missing = cli("dashboards", "remove", "k1")
    assert missing.exit_code == 2 and "k1" in missing.stderr
    for group in ("datasources", "pipelines", "dashboards"):
        assert cli(group, "list", "--json").json() == []
