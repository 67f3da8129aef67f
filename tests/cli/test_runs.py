"""`alerts runs record|wrap|list` and the pipeline_failure alert that watches them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import Cli


def _pipeline_with_alert(cli: Cli, tmp_path: Path, job: str = "p1") -> None:
    assert cli("pipelines", "add", job, "--name", f"Pipeline {job}").exit_code == 0
    definition = tmp_path / f"{job}.yaml"
    definition.write_text(
        f"name: {job} failed\ncondition_type: pipeline_failure\n"
        f"condition_config: {{pipeline_id: {job}}}\n"
    )
    created = cli("create", "--from-file", str(definition))
    assert created.exit_code == 0, created.output


def test_wrap_records_a_failed_run_and_the_alert_fires(cli: Cli, tmp_path: Path) -> None:
    _pipeline_with_alert(cli, tmp_path)
    before = cli("evaluate", "--dry-run", "--json").json()
    assert [r["outcome"] for r in before["results"]] == ["ok"]

    wrapped = cli("runs", "wrap", "p1", "--", "sh", "-c", "echo boom >&2; exit 3")
    assert wrapped.exit_code == 3
    assert "boom" in wrapped.stderr  # still streamed to the user's terminal

    [run] = cli("runs", "list", "p1", "--json").json()
    assert run["status"] == "failed"
    assert run["exit_code"] == 3
    assert "boom" in run["error"]
    assert run["command"] == "sh -c 'echo boom >&2; exit 3'"
    assert run["started_at"] <= run["finished_at"]
    assert run["host"]

    report = cli("evaluate", "--dry-run", "--json")
    assert report.exit_code == 0, report.output
    [result] = report.json()["results"]
    assert result["outcome"] == "firing"
    assert result["state"] == "firing"
    assert "boom" in result["summary"]


def test_wrap_success_and_command_not_found(cli: Cli, tmp_path: Path) -> None:
    _pipeline_with_alert(cli, tmp_path)
    assert cli("runs", "wrap", "p1", "--", "true").exit_code == 0
    missing = cli("runs", "wrap", "p1", "--", "/no/such/program-xyz")
    assert missing.exit_code == 127
    assert "command not found" in missing.stderr
    runs = cli("runs", "list", "--json").json()
    assert [(r["status"], r["exit_code"]) for r in runs] == [("failed", 127), ("success", 0)]
    assert runs[0]["error"] == "command not found: /no/such/program-xyz"
    assert runs[1]["error"] is None


def test_wrap_in_a_real_process_streams_and_marks_the_run_running_meanwhile(
    sqlite_url: str, tmp_path: Path, cli: Cli
) -> None:
    assert cli("pipelines", "add", "p1", "--name", "P1").exit_code == 0
    seen = tmp_path / "running.json"
    inner = (
        f"{sys.executable} -m datamantri_alerts --db {sqlite_url} runs list --status running "
        f"--json > {seen}; echo out-line; echo err-line >&2; exit 4"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "datamantri_alerts",
            "--db",
            sqlite_url,
            "runs",
            "wrap",
            "p1",
            "--",
            "sh",
            "-c",
            inner,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert done.returncode == 4, done.stderr
    assert "out-line" in done.stdout
    assert "err-line" in done.stderr
    [running] = json.loads(seen.read_text())
    assert running["status"] == "running"
    assert running["finished_at"] is None
    [final] = cli("runs", "list", "--json").json()
    assert final["id"] == running["id"]
    assert final["status"] == "failed"
    assert final["error"] == "err-line"


def test_record_and_list(cli: Cli, tmp_path: Path) -> None:
    _pipeline_with_alert(cli, tmp_path)
    ok = cli(
        "runs",
        "record",
        "p1",
        "--status",
        "success",
        "--started-at",
        "2025-06-01T01:00:00Z",
        "--finished-at",
        "2025-06-01T01:30:00+00:00",
    )
    assert ok.exit_code == 0, ok.output
    failed = cli("runs", "record", "p1", "--status", "failed", "--error", "bad row", "--json")
    assert failed.exit_code == 0
    assert failed.json()["error"] == "bad row"

    runs = cli("runs", "list", "--json").json()
    assert [r["status"] for r in runs] == ["failed", "success"]
    assert runs[1]["started_at"] == "2025-06-01T01:00:00+00:00"
    assert cli("runs", "list", "--status", "success", "--json").json()[0]["id"] == runs[1]["id"]
    table = cli("runs", "list")
    assert table.exit_code == 0
    assert "bad row" in table.stdout

    [result] = cli("evaluate", "--dry-run", "--json").json()["results"]
    assert result["outcome"] == "firing"


def test_record_refuses_bad_input_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    _pipeline_with_alert(cli, tmp_path)
    assert cli("dashboards", "add", "d1", "--name", "D1").exit_code == 0
    assert (
        cli(
            "pipelines",
            "add",
            "airflow",
            "--name",
            "A",
            "--runs-source",
            "dbt",
            "--path",
            "/tmp/x.json",
        ).exit_code
        == 0
    )
    cases = [
        (("runs", "record", "nope", "--status", "success"), "no pipeline or dashboard"),
        (("runs", "record", "p1", "--status", "maybe"), "success or failed"),
        (("runs", "record", "p1", "--status", "failed", "--finished-at", "yesterday"), "ISO"),
        (
            ("runs", "record", "p1", "--status", "failed", "--finished-at", "2025-06-01T01:00"),
            "offset",
        ),
        (
            (
                "runs",
                "record",
                "p1",
                "--status",
                "success",
                "--started-at",
                "2025-06-02T00:00:00Z",
                "--finished-at",
                "2025-06-01T00:00:00Z",
            ),
            "before",
        ),
        (("runs", "record", "airflow", "--status", "failed"), "takes its runs from dbt"),
        (("runs", "record", "d1", "--kind", "pipeline", "--status", "failed"), "no pipeline"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
    assert cli("runs", "list", "--json").json() == []


def test_dashboard_runs_are_recorded_for_dashboards(cli: Cli) -> None:
    assert cli("dashboards", "add", "kpis", "--name", "KPIs").exit_code == 0
    assert cli("runs", "record", "kpis", "--status", "failed").exit_code == 0
    [run] = cli("runs", "list", "kpis", "--json").json()
    assert run["job_kind"] == "dashboard"
