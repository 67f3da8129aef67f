"""A store made by the first released schema (0001_initial) upgrades with nothing lost."""

from __future__ import annotations

import json

from sqlalchemy import create_engine, text

from datamantri_alerts.store.engine import normalize_url
from datamantri_alerts.store.migrate import SCHEMA_HEAD, current_revision
from tests.conftest import Cli

FIRST_RELEASE = "0001_initial"


def _make_first_release_store(url: str) -> None:
    """Build the store with the old migration only and fill it the way 0.1.0 wrote rows."""
    from alembic import command
    from alembic.config import Config

    from datamantri_alerts.store.migrate import MIGRATIONS_DIR

    engine = create_engine(normalize_url(url))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    command.upgrade(cfg, FIRST_RELEASE)
    now = "2026-01-05 10:00:00"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO datasources (id, name, url, freshness, created_at, updated_at) "
                "VALUES ('wh', 'Warehouse', 'sqlite:///wh.db', :fresh, :now, :now)"
            ),
            {"fresh": json.dumps({"table": "orders", "column": "loaded_at"}), "now": now},
        )
        conn.execute(
            text(
                "INSERT INTO pipelines (id, name, runs, created_at, updated_at) "
                "VALUES ('etl', 'ETL', :runs, :now, :now)"
            ),
            {"runs": json.dumps({"source": "recorded"}), "now": now},
        )
        for i in range(1, 4):
            conn.execute(
                text(
                    "INSERT INTO alerts (id, name, description, condition_type, condition_config, "
                    "channels, recipients, is_active, severity, repeat_interval_minutes, "
                    "notify_on_resolve, pending_evaluations, state, consecutive_hits, "
                    "trigger_count, "
                    "created_at, updated_at) VALUES (:id, :name, 'old', 'pipeline_failure', :cfg, "
                    ":ch, :rc, :active, 'critical', 240, :nor, 1, :state, 0, :tc, :now, :now)"
                ),
                {
                    "id": i,
                    "name": f"Old alert {i}",
                    "cfg": json.dumps({"pipeline_id": "etl"}),
                    "ch": json.dumps(["email"]),
                    "rc": json.dumps({"email": [f"o{i}@example.com"]}),
                    "active": i != 3,
                    "nor": True,
                    "state": "firing" if i == 1 else "ok",
                    "tc": i,
                    "now": now,
                },
            )
            conn.execute(
                text(
                    "INSERT INTO alert_history (alert_id, alert_name, triggered_at, condition_met, "
                    "kind, severity, summary, details, notifications_sent, notification_errors, "
                    "resolved_at) VALUES (:id, :name, :now, :met, 'firing', 'critical', 'failed', "
                    ":details, :sent, '[]', NULL)"
                ),
                {
                    "id": i,
                    "name": f"Old alert {i}",
                    "now": now,
                    "met": True,
                    "details": json.dumps({"failed_runs": [i]}),
                    "sent": json.dumps([{"channel": "email", "kind": "firing"}]),
                },
            )
    assert current_revision(engine) == FIRST_RELEASE
    engine.dispose()


def test_first_release_store_upgrades_without_loss(store_url: str) -> None:
    _make_first_release_store(store_url)
    cli = Cli(store_url)
    upgraded = cli("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert SCHEMA_HEAD in upgraded.stdout
    engine = create_engine(normalize_url(store_url))
    assert current_revision(engine) == SCHEMA_HEAD
    engine.dispose()

    alerts = cli("list", "--json").json()
    assert [(a["name"], a["state"], a["trigger_count"], a["is_active"]) for a in alerts] == [
        ("Old alert 1", "firing", 1, True),
        ("Old alert 2", "ok", 2, True),
        ("Old alert 3", "ok", 3, False),
    ]
    assert alerts[0]["recipients"] == {"email": ["o1@example.com"]}
    assert alerts[0]["condition_config"] == {"pipeline_id": "etl"}
    exported = cli("export").stdout
    assert "loaded_at" in exported and "etl" in exported
    engine = create_engine(normalize_url(store_url))
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT alert_name, details FROM alert_history ORDER BY alert_name")
        ).all()
    engine.dispose()
    assert [r[0] for r in rows] == ["Old alert 1", "Old alert 2", "Old alert 3"]
    # Episodes from before the dedup_key epoch keep the PagerDuty key they were sent with.
    engine = create_engine(normalize_url(store_url))
    with engine.connect() as conn:
        keys = conn.execute(
            text("SELECT alert_id, id, incident_key FROM alert_history ORDER BY id")
        ).all()
    engine.dispose()
    assert [k for _, _, k in keys] == [f"datamantri-alerts/{a}/{i}" for a, i, _ in keys]
    details = rows[0][1] if isinstance(rows[0][1], dict) else json.loads(rows[0][1])
    assert details == {"failed_runs": [1]}
    assert cli("db", "upgrade").stdout.strip().endswith(f"already at {SCHEMA_HEAD}")
