"""Text from watched systems (query results, HTTP error bodies) is stored on every dialect."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.conftest import Cli
from tests.evaluator.conftest import Sink


def test_query_rows_and_http_error_body_with_nul_are_stored(
    store_cli: Cli, tmp_path: Path, sink: Sink
) -> None:
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as conn:
        conn.execute("create table events (name text)")
        conn.execute("insert into events values ('core' || char(0) || 'dump')")
    assert (
        store_cli("datasources", "add", "wh", "--name", "WH", "--url", f"sqlite:///{warehouse}")
    ).exit_code == 0
    definition = tmp_path / "alert.yaml"
    definition.write_text(
        "name: nul rows\ncondition_type: sql\n"
        "condition_config: {datasource_id: wh, query: 'select name from events'}\n"
        f"channels: [slack]\nrecipients: {{slack: '{sink.hook('n')}'}}\n"
    )
    assert store_cli("create", "--from-file", str(definition)).exit_code == 0
    sink.on("n", (404, {}, "no\x00service"))

    result = store_cli("evaluate", "--json")
    assert result.exit_code == 1, result.output  # the delivery failed for good (404)
    [row] = result.json()["results"]
    assert (row["outcome"], row["state"]) == ("firing", "firing")
    assert result.json()["notifications"]["failed"] == 1

    shown = store_cli("show", "nul rows", "--json").json()
    assert shown["state"] == "firing"
    [episode] = store_cli("history", "--json").json()
    detail = store_cli("history", "show", str(episode["id"]), "--json").json()
    assert detail["details"]["rows"] == [{"name": "core\\x00dump"}]
    [attempt] = detail["notification_errors"]
    assert "no\\x00service" in attempt["reason"]
