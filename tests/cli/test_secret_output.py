"""No secret in any output, at any verbosity (issue 10 section 2), through the real commands.

- An HTTP data source `http://127.0.0.1:1/health?sig=SIG&api_key=KEY` that fails: `datasources
  check`, `evaluate --json`, `history`, `history show` and the Slack message received by a
  loopback sink used to print `?sig=SIG&api_key=KEY` (from the requests exception text).
- Tracebacks at -v/-vv carried SQLAlchemy's `[parameters: ...]` with webhook URLs and data
  source passwords; and a driver error quoting the value it refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import REPO_ROOT, Cli
from tests.evaluator.conftest import Sink, sink

__all__ = ["sink"]

ISSUE_URL = "http://127.0.0.1:1/health?sig=SIG&api_key=KEY"
LEAKS = ("sig=SIG", "api_key=KEY", "/health?", "sig%3DSIG", "api_key%3DKEY")
WEBHOOK_TOKEN = "TRACEslackTOKEN5e1c"
DB_PASSWORD = "TRACEdbPASS93b2"


def leaks(output: str) -> list[str]:
    return [marker for marker in LEAKS if marker in output]


def test_failing_http_source_url_is_masked_everywhere(cli: Cli, sink: Sink) -> None:
    assert cli("datasources", "add", "api", "--name", "API", "--url", ISSUE_URL).exit_code == 0
    created = cli(
        *("create", "--name", "api down", "--type", "datasource_failure"),
        *("--config", "datasource_id=api", "--channel", "slack", "--slack", sink.hook("slack")),
    )
    assert created.exit_code == 0, created.output

    checked = cli("datasources", "check", "api")
    assert checked.exit_code == 1, checked.output
    assert "127.0.0.1:1" in checked.output  # the host is kept: the reader knows what failed
    assert "refused" in checked.output.lower()
    assert leaks(checked.output) == [], checked.output

    evaluated = cli("evaluate", "--json")
    assert leaks(evaluated.output) == [], evaluated.output
    report = evaluated.json()  # still valid JSON after redaction
    (result,) = report["results"]
    assert result["outcome"] == "firing" and "127.0.0.1:1" in result["summary"]
    assert report["notifications"]["sent"] == 1

    (body,) = sink.bodies("slack")
    slack_text = json.dumps(body)
    assert "127.0.0.1:1" in slack_text  # the message does say what failed
    assert leaks(slack_text) == [], slack_text

    outputs = {
        "evaluate -vv": cli("-vv", "evaluate", "--all"),
        "history": cli("history"),
        "history --json": cli("history", "--json"),
        "history show": cli("history", "show", "1"),
        "history show --json": cli("history", "show", "1", "--json"),
        "datasources list": cli("datasources", "list", "--json"),
        "export": cli("export"),
    }
    for name, shown in outputs.items():
        assert shown.exit_code in (0, 1), (name, shown.output)
        assert leaks(shown.output) == [], (name, shown.output)
    assert "DEBUG" in outputs["evaluate -vv"].output  # the logging was on
    assert "127.0.0.1:1" in outputs["history show"].output
    episodes = outputs["history --json"].json()
    assert episodes and "refused" in json.dumps(episodes).lower()
    assert "url: <redacted>" in outputs["export"].stdout


def test_export_and_sync_keep_a_redacted_http_source(cli: Cli, tmp_path: Path) -> None:
    assert cli("datasources", "add", "api", "--name", "API", "--url", ISSUE_URL).exit_code == 0
    exported = cli("export").stdout
    assert "<redacted>" in exported and leaks(exported) == []
    (tmp_path / "alerts.yaml").write_text(exported)
    synced = cli("sync", str(tmp_path / "alerts.yaml"))
    assert synced.exit_code == 0, synced.output
    full = cli("export", "--show-secrets").stdout  # asked for: printed in full
    assert ISSUE_URL in full


def forced_failure_store(url: str) -> None:
    """A store whose inserts of data sources and alerts fail inside the database, after the
    statement (and its parameters) reached it."""
    assert Cli(url)("pipelines", "add", "p", "--name", "P").exit_code == 0  # and the schema
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for table in ("datasources", "alerts"):
                conn.execute(
                    text(
                        f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                        "BEGIN SELECT RAISE(ABORT, 'forced failure'); END"
                    )
                )
    finally:
        engine.dispose()


def run_child(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m datamantri_alerts` as cron would run it: the real entry point."""
    env = {**os.environ, "ALERTS_DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "datamantri_alerts", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize("verbosity", ["-v", "-vv"])
def test_store_failure_traceback_hides_parameters(sqlite_url: str, verbosity: str) -> None:
    forced_failure_store(sqlite_url)
    webhook = f"https://hooks.slack.com/services/T0/B0/{WEBHOOK_TOKEN}"
    database = f"postgresql://monitor:{DB_PASSWORD}@db.internal/wh"
    runs = [
        run_child(sqlite_url, verbosity, "datasources", "add", "wh", "--name", "W", "--url", database),  # noqa: E501
        run_child(
            sqlite_url, verbosity,
            *("create", "--name", "x", "--type", "pipeline_failure"),
            *("--config", "pipeline_id=p", "--channel", "slack", "--slack", webhook),
        ),
    ]  # fmt: skip
    for done in runs:
        output = done.stdout + done.stderr
        assert done.returncode == 1, output
        assert "Traceback" in done.stderr and "forced failure" in done.stderr  # it was printed
        assert "error: store error" in done.stderr
        assert WEBHOOK_TOKEN not in output and DB_PASSWORD not in output, output
        assert "hooks.slack.com/services" not in output, output


def test_store_failure_in_process_runner_is_redacted_too(sqlite_url: str) -> None:
    forced_failure_store(sqlite_url)
    database = f"postgresql://monitor:{DB_PASSWORD}@db.internal/wh"
    done = Cli(sqlite_url)("-vv", "datasources", "add", "wh", "--name", "W", "--url", database)
    assert done.exit_code == 1
    assert "Traceback" in done.stderr and "forced failure" in done.stderr
    assert DB_PASSWORD not in done.output, done.output


def test_driver_error_quoting_the_secret_is_redacted(pg_url: str) -> None:
    """PostgreSQL refuses the row with a message that quotes the URL it was given."""
    assert Cli(pg_url)("list").exit_code == 0
    engine = create_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_ds() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    "BEGIN RAISE EXCEPTION 'refused url %', NEW.url; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_ds BEFORE INSERT ON datasources "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_ds()"
                )
            )
    finally:
        engine.dispose()
    database = f"postgresql://monitor:{DB_PASSWORD}@db.internal/wh"
    for verbosity in ("-v", "-vv"):
        done = run_child(
            pg_url, verbosity, "datasources", "add", "wh", "--name", "W", "--url", database
        )
        assert done.returncode == 1, done.stderr
        assert "refused url" in done.stderr and "Traceback" in done.stderr
        assert DB_PASSWORD not in done.stdout + done.stderr, done.stderr


def test_history_rows_written_before_the_fix_are_shown_clean(cli: Cli, sqlite_url: str) -> None:
    """An episode an older version stored with the leak in it: redacted when read back."""
    assert cli("datasources", "add", "api", "--name", "API", "--url", ISSUE_URL).exit_code == 0
    created = cli(
        *("create", "--name", "api down", "--type", "datasource_failure"),
        *("--config", "datasource_id=api", "--channel", "email", "--email", "ops@example.com"),
    )
    assert created.exit_code == 0, created.output
    assert cli("evaluate").exit_code in (0, 1)
    old_text = (
        "GET http://127.0.0.1:1/*** failed: Max retries exceeded with url: "
        "/health?sig=SIG&api_key=KEY [parameters: ('postgresql://u:oldPASS77@h/db',)]"
    )
    engine = create_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE alert_history SET summary = :s, details = :d"),
                {"s": old_text, "d": json.dumps({"error": old_text})},
            )
    finally:
        engine.dispose()
    for args in (("history", "show", "1"), ("history", "show", "1", "--json"), ("history",)):
        shown = cli(*args)
        assert shown.exit_code == 0, shown.output
        assert leaks(shown.output) == [] and "oldPASS77" not in shown.output, shown.output
    assert "Max retries exceeded" in cli("history", "show", "1").output
    episode = cli("history", "show", "1", "--json").json()  # still valid JSON
    assert episode["summary"].endswith("with url: /*** [parameters: ***]")
    assert episode["details"] == {"error": episode["summary"]}


# A store URL whose `@host` is missing: SQLAlchemy reads the password as the port and its error
# was `invalid literal for int() with base 10: '<password>'`, printed as an internal error
# (and in full at -v): the password was not registered, since the URL has no userinfo.
UNPARSED_STORE_URL = f"postgresql://alerts:{DB_PASSWORD}/alerts"


@pytest.mark.parametrize("verbosity", [[], ["-v"], ["-vv"]])
@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["evaluate", "--quiet"],
        ["db", "upgrade"],
        ["db", "current"],
        ["validate", "--db", UNPARSED_STORE_URL, "FILE"],
    ],
)
def test_a_store_url_that_does_not_parse_is_one_line_without_its_password(
    tmp_path: Path, verbosity: list[str], command: list[str]
) -> None:
    definitions = tmp_path / "alerts.yaml"
    definitions.write_text("alerts: []\n")
    command = [str(definitions) if part == "FILE" else part for part in command]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "datamantri_alerts",
            *verbosity,
            "--db",
            UNPARSED_STORE_URL,
            *command,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert DB_PASSWORD not in done.stdout + done.stderr
    problems = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(problems) == 1, done.stderr
    assert problems[0].startswith("error: --db: not a database URL that SQLAlchemy can read")
    assert "Traceback" not in done.stderr


def test_the_environment_variable_is_named_when_it_holds_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from datamantri_alerts.cli import app

    monkeypatch.setenv("ALERTS_DATABASE_URL", UNPARSED_STORE_URL)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 2
    assert DB_PASSWORD not in result.output
    assert result.stderr.startswith("error: ALERTS_DATABASE_URL: not a database URL")
