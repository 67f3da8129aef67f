"""`alerts ... | head`: the reader going away ends the command quietly, as SIGPIPE would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import Cli


def test_output_to_a_closed_pipe_ends_quietly(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    alerts = "\n".join(
        f"  - {{name: a{i}, condition_type: pipeline_failure,"
        f" condition_config: {{pipeline_id: p}}, channels: []}}"
        for i in range(400)
    )
    doc = tmp_path / "alerts.yaml"
    doc.write_text(
        "pipelines:\n  - {id: p, name: P, runs: {source: recorded}}\nalerts:\n" + alerts + "\n"
    )
    assert cli("sync", str(doc)).exit_code == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "datamantri_alerts", "--db", sqlite_url, "list", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().strip() == b"["  # what `head -1` reads, then it goes away
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == ""
