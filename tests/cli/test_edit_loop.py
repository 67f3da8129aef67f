"""`alerts edit` (and `datasources|pipelines|dashboards edit`) in $EDITOR, as kubectl does it.

The editor is a real program: a Python script that follows a list of steps, one per time it
is opened (replace text, empty the file, save unchanged, run a command while open), and
keeps a copy of every text it was shown.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli

EDITOR_SCRIPT = r"""
import json, pathlib, subprocess, sys
steps_file = pathlib.Path(sys.argv[1])
target = pathlib.Path(sys.argv[2])
state = json.loads(steps_file.read_text())
n = state["opened"]
state["opened"] = n + 1
steps_file.write_text(json.dumps(state))
text = target.read_text()
(steps_file.parent / f"shown-{n}.yaml").write_text(text)
step = state["steps"][n] if n < len(state["steps"]) else {"keep": True}
if "run" in step:
    done = subprocess.run(step["run"], capture_output=True, text=True, timeout=120)
    (steps_file.parent / f"ran-{n}.json").write_text(
        json.dumps({"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr})
    )
if "replace" in step:
    old, new = step["replace"]
    assert old in text, (old, text)
    text = text.replace(old, new)
if step.get("empty"):
    text = ""
target.write_text(text)
sys.exit(step.get("exit", 0))
"""


class ScriptedEditor:
    """$EDITOR for one test: `steps` are consumed one per opening."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.script = folder / "editor.py"
        self.script.write_text(EDITOR_SCRIPT)
        self.steps_file = folder / "steps.json"

    def env(self, *steps: dict[str, Any]) -> dict[str, str]:
        for old in self.folder.glob("shown-*.yaml"):
            old.unlink()
        self.steps_file.write_text(json.dumps({"opened": 0, "steps": list(steps)}))
        return {"EDITOR": f"{sys.executable} {self.script} {self.steps_file}", "VISUAL": ""}

    @property
    def opened(self) -> int:
        return int(json.loads(self.steps_file.read_text())["opened"])

    def shown(self, n: int) -> str:
        return (self.folder / f"shown-{n}.yaml").read_text()

    def ran(self, n: int) -> dict[str, Any]:
        return json.loads((self.folder / f"ran-{n}.json").read_text())


@pytest.fixture
def editor(tmp_path: Path) -> ScriptedEditor:
    folder = tmp_path / "editor"
    folder.mkdir()
    return ScriptedEditor(folder)


def _alert(cli: Cli, tmp_path: Path) -> None:
    assert cli("pipelines", "add", "etl", "--name", "Nightly ETL").exit_code == 0
    path = tmp_path / "alert.yaml"
    path.write_text(
        "name: etl failed\n"
        "description: nightly\n"
        "condition_type: pipeline_failure\n"
        "condition_config: {pipeline_id: etl, check_last_n_runs: 1}\n"
        "channels: [slack]\n"
        "recipients: {slack: 'https://hooks.slack.com/services/T0/B0/SECRET'}\n"
    )
    created = cli("create", "--from-file", str(path))
    assert created.exit_code == 0, created.output


def _kept_file(stderr: str) -> Path:
    match = re.search(r"kept in (\S+\.yaml)", stderr)
    assert match, stderr
    return Path(match.group(1))


def test_invalid_save_reopens_with_errors_on_top_then_saves(
    cli: Cli, tmp_path: Path, editor: ScriptedEditor
) -> None:
    _alert(cli, tmp_path)
    env = editor.env(
        {"replace": ["check_last_n_runs: 1", "check_last_n_runs: 0"]},
        {"replace": ["check_last_n_runs: 0", "check_last_n_runs: 3"]},
    )
    result = cli("edit", "etl failed", env=env)
    assert result.exit_code == 0, result.output
    assert editor.opened == 2
    first, second = editor.shown(0), editor.shown(1)
    # The secret is never put in the file; <redacted> keeps it.
    assert "SECRET" not in first and "<redacted>" in first
    # Reopened on the text as saved, with the error as comments at the top.
    assert "check_last_n_runs: 0" in second
    header = second.split("name: etl failed")[0]
    assert all(line.startswith("#") for line in header.strip().splitlines())
    assert "check_last_n_runs" in header and "nothing was written" in header
    shown = cli("show", "etl failed", "--json").json()
    assert shown["condition_config"]["check_last_n_runs"] == 3
    export = cli("export", "--show-secrets").stdout
    assert "https://hooks.slack.com/services/T0/B0/SECRET" in export


def test_giving_up_after_an_error_keeps_the_edit(
    cli: Cli, tmp_path: Path, editor: ScriptedEditor
) -> None:
    _alert(cli, tmp_path)
    # Invalid, then saved again without changes: the user gives up.
    env = editor.env({"replace": ["pipeline_failure", "no_such_type"]}, {"keep": True})
    result = cli("edit", "etl failed", env=env)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no_such_type" in result.stderr and "nothing saved" in result.stderr
    kept = _kept_file(result.stderr)
    assert "condition_type: no_such_type" in kept.read_text()
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    kept.unlink()
    assert cli("show", "etl failed", "--json").json()["condition_type"] == "pipeline_failure"

    # Invalid, then the file emptied: also kept.
    env = editor.env({"replace": ["nightly", "nightly\nbogus_key: 1"]}, {"empty": True})
    result = cli("edit", "etl failed", env=env)
    assert result.exit_code == 2
    assert "emptied" in result.stderr
    kept = _kept_file(result.stderr)
    assert "bogus_key: 1" in kept.read_text()
    kept.unlink()


def test_unchanged_or_emptied_first_time_cancels(
    cli: Cli, tmp_path: Path, editor: ScriptedEditor
) -> None:
    _alert(cli, tmp_path)
    before = cli("show", "etl failed", "--json").json()
    for step in ({"keep": True}, {"empty": True}):
        result = cli("edit", "etl failed", env=editor.env(step))
        assert result.exit_code == 0, result.output
        assert "cancelled" in result.stdout
        assert "kept in" not in result.output
    assert cli("show", "etl failed", "--json").json() == before


def test_missing_editor_is_one_line(cli: Cli, tmp_path: Path) -> None:
    _alert(cli, tmp_path)
    result = cli("edit", "etl failed", env={"EDITOR": "/no/such/editor-xyz", "VISUAL": ""})
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: $EDITOR: editor '/no/such/editor-xyz' not found; set $EDITOR (or $VISUAL) "
        "to an installed editor"
    ]
    assert result.exception is None


def test_no_lock_while_the_editor_is_open(
    cli: Cli, tmp_path: Path, sqlite_url: str, editor: ScriptedEditor
) -> None:
    _alert(cli, tmp_path)
    assert cli("runs", "record", "etl", "--status", "success").exit_code == 0
    evaluate = [
        sys.executable,
        "-m",
        "datamantri_alerts",
        "--db",
        sqlite_url,
        "evaluate",
        "--all",
        "--json",
    ]
    env = editor.env(
        {"run": evaluate, "replace": ["description: nightly", "description: edited meanwhile"]}
    )
    result = cli("edit", "etl failed", env={**env, "SLACK_WEBHOOK_URL": ""})
    ran = editor.ran(0)
    # A real evaluator run wrote state while the editor was open, and was not blocked.
    assert ran["rc"] == 0, ran
    assert "locked" not in ran["stderr"]
    assert json.loads(ran["stdout"])["results"][0]["outcome"] == "ok"
    # Evaluation bookkeeping is not someone else's edit: the save goes through.
    assert result.exit_code == 0, result.output
    shown = cli("show", "etl failed", "--json").json()
    assert shown["description"] == "edited meanwhile"
    assert shown["last_evaluated_at"] is not None


@pytest.mark.parametrize(
    "meanwhile",
    [
        ["edit", "etl failed", "--description", "changed by a colleague"],
        ["mute", "etl failed", "--for", "1h"],
        ["delete", "etl failed", "--yes"],
    ],
    ids=["edited", "muted", "deleted"],
)
# On SQLite and PostgreSQL: the check is in the UPDATE's WHERE, whatever the dialect.
def test_a_change_made_meanwhile_is_not_overwritten(
    store_cli: Cli, tmp_path: Path, store_url: str, editor: ScriptedEditor, meanwhile: list[str]
) -> None:
    _alert(store_cli, tmp_path)
    concurrent = [sys.executable, "-m", "datamantri_alerts", "--db", store_url, *meanwhile]
    env = editor.env(
        {"run": concurrent, "replace": ["check_last_n_runs: 1", "check_last_n_runs: 4"]}
    )
    before = store_cli("show", "etl failed", "--json")
    result = store_cli("edit", "etl failed", env=env)
    assert editor.ran(0)["rc"] == 0, editor.ran(0)
    assert result.exit_code == 1, result.output
    assert "by someone else meanwhile; your edit is kept in" in result.stderr
    kept = _kept_file(result.stderr)
    assert "check_last_n_runs: 4" in kept.read_text()
    kept.unlink()
    after = store_cli("show", "etl failed", "--json")
    if meanwhile[0] == "delete":
        assert after.exit_code == 2
        return
    assert after.json()["condition_config"]["check_last_n_runs"] == 1
    assert after.json() != before.json()  # the colleague's change is still there


def test_entities_show_and_edit_use_the_same_loop(
    cli: Cli, tmp_path: Path, editor: ScriptedEditor
) -> None:
    url = "postgresql://reader:s3cretpw@db.example.com/wh"
    added = cli("datasources", "add", "wh", "--name", "Warehouse", "--url", url)
    assert added.exit_code == 0, added.output
    shown = cli("datasources", "show", "wh", "--json").json()
    assert shown["name"] == "Warehouse" and "s3cretpw" not in json.dumps(shown)
    assert "s3cretpw" not in cli("datasources", "show", "wh").stdout

    editor_env = editor.env(
        {"replace": ["name: Warehouse", "name: Main warehouse\nbogus: 1"]},
        {"replace": ["bogus: 1\n", ""]},
    )
    result = cli("datasources", "edit", "wh", env=editor_env)
    assert result.exit_code == 0, result.output
    assert editor.opened == 2
    assert "s3cretpw" not in editor.shown(0)
    assert "bogus" in editor.shown(1).split("id: wh")[0]  # the error, at the top
    assert cli("datasources", "show", "wh", "--json").json()["name"] == "Main warehouse"
    export = cli("export", "--show-secrets").stdout
    assert "s3cretpw" in export  # the <redacted> password kept the stored one

    # The id cannot be changed by an edit; giving up keeps the file.
    result = cli(
        "datasources", "edit", "wh", env=editor.env({"replace": ["id: wh", "id: other"]}, {})
    )
    assert result.exit_code == 2
    assert "id: cannot be changed" in result.stderr
    _kept_file(result.stderr).unlink()

    assert cli("pipelines", "add", "etl", "--name", "ETL").exit_code == 0
    result = cli(
        "pipelines", "edit", "etl", env=editor.env({"replace": ["name: ETL", "name: Nightly"]})
    )
    assert result.exit_code == 0, result.output
    assert cli("pipelines", "show", "etl", "--json").json()["name"] == "Nightly"
    assert cli("dashboards", "show", "nope").exit_code == 2


def test_recipient_flags_alone_do_not_open_the_editor(cli: Cli, tmp_path: Path) -> None:
    _alert(cli, tmp_path)
    env = {"EDITOR": "/no/such/editor-xyz", "VISUAL": ""}
    result = cli("edit", "etl failed", "--email", "new@example.com", env=env)
    assert result.exit_code == 0, result.output
    assert cli("show", "etl failed", "--json").json()["recipients"]["email"] == ["new@example.com"]
