"""Canary secrets set everywhere they can be, every failure forced, every output scanned.

Canaries: a Slack webhook token (literal recipient, and SLACK_WEBHOOK_URL for an alert without
one), a Teams `sig` (literal recipient, and TEAMS_WEBHOOK_URL), the SMTP password, the Twilio
auth token, a heartbeat URL token, a database password in a data source URL (literal, and
through `${WAREHOUSE_URL}`), an HTTP data source's path and query (literal, and through
`${STATUS_URL}`), a MariaDB data source's password (refused by the server), the store's own
password (the store unreachable), and a webhook token and a database password sent into a store
that refuses the insert (a forced constraint failure, traceback printed at -v and -vv, in
process and through `python -m datamantri_alerts`). The stand-ins answer with failures that
echo what they were sent: Slack 403 and Teams 503 with the webhook URL and token in the body,
SMTP 535 (wrong password), Twilio 401 quoting the token, the heartbeat 500 quoting its URL, and
the databases are unreachable. Then `evaluate` (-v, -vv, --json), `show`, `list`, `export`,
`history`, `history show`, `status`, `test`, `datasources list|check`, each with and without --json:
the canaries must appear 0 times in stdout, stderr and logs, and in no store column except
those that hold the configured value itself (recipients, data source URLs, and the outbox's
copy of the recipient).

    .venv/bin/pytest tests/reliability/test_secret_canaries.py -s
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from tests.channels.conftest import (
    LoopbackHTTPServer,
    Reply,
    SMTPServer,
    twilio_error,
)
from tests.conftest import REPO_ROOT, Cli, closed_port
from tests.evaluator.conftest import Flags, Sink

SLACK_TOKEN = "CANARYslackTOKEN7f3a91"
SLACK_ENV_TOKEN = "CANARYslackENV5521bd"
TEAMS_SIG = "CANARYteamsSIG04e8c2"
TEAMS_ENV_SIG = "CANARYteamsENV9d17aa"
SMTP_PASSWORD = "CANARYsmtpPASS3b60f1"
TWILIO_TOKEN = "CANARYtwilioTOK8e2d47"
HEARTBEAT_TOKEN = "CANARYheartbeat61c0e9"
DB_PASSWORD = "CANARYdbPASS2a9f55"
DB_ENV_PASSWORD = "CANARYdbENVPASS7c3e10"
HTTP_PATH = "CANARYhttpPATH5b8e02"
HTTP_QUERY = "CANARYhttpSIG3f1a77"
HTTP_ENV_TOKEN = "CANARYhttpENV0c94d1"
MARIADB_PASSWORD = "CANARYmariaPASS66e2"
STORE_PASSWORD = "CANARYstorePASS1d7b"
FORCED_TOKEN = "CANARYforcedTOK90ab"
FORCED_PASSWORD = "CANARYforcedPW4c2e"
CANARIES = (
    HTTP_PATH,
    HTTP_QUERY,
    HTTP_ENV_TOKEN,
    MARIADB_PASSWORD,
    STORE_PASSWORD,
    FORCED_TOKEN,
    FORCED_PASSWORD,
    SLACK_TOKEN,
    SLACK_ENV_TOKEN,
    TEAMS_SIG,
    TEAMS_ENV_SIG,
    SMTP_PASSWORD,
    TWILIO_TOKEN,
    HEARTBEAT_TOKEN,
    DB_PASSWORD,
    DB_ENV_PASSWORD,
)
#: Columns that hold a configured secret itself (by design; see ALERTS_SECRET_KEY for at rest).
CONFIGURED = {("alerts", "recipients"), ("datasources", "url"), ("notifications", "recipient")}


@pytest.fixture
def echoing() -> Iterator[dict[str, LoopbackHTTPServer]]:
    """Slack answering 403 and Teams 503, both echoing the URL they were called on; Twilio 401
    quoting the token."""
    slack = LoopbackHTTPServer(Reply(403, "placeholder")).start()
    teams = LoopbackHTTPServer(Reply(503, "placeholder")).start()
    twilio = LoopbackHTTPServer(
        twilio_error(401, 20003, f"Authenticate: auth token {TWILIO_TOKEN} rejected")
    ).start()
    for server, status in ((slack, 403), (teams, 503)):
        original = server._answer

        def echo(
            received: Any,
            server: LoopbackHTTPServer = server,
            status: int = status,
            original: Any = original,
        ) -> Any:
            original(received)
            url = server.url(received.path)
            return Reply(status, f"invalid_token for {url} (path {received.path})")

        server._answer = echo  # type: ignore[method-assign]
    yield {"slack": slack, "teams": teams, "twilio": twilio}
    for server in (slack, teams, twilio):
        server.stop()


def count(haystack: str) -> Counter[str]:
    return Counter({c: haystack.count(c) for c in CANARIES if c in haystack})


def store_canaries(sqlite_url: str) -> dict[tuple[str, str], Counter[str]]:
    """Every text value of every column of every table, scanned."""
    found: dict[tuple[str, str], Counter[str]] = {}
    engine = create_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                for column in inspect(conn).get_columns(table):
                    name = column["name"]
                    values = conn.execute(text(f'SELECT CAST("{name}" AS TEXT) FROM "{table}"'))
                    hits = count("\n".join(str(v) for (v,) in values if v is not None))
                    if hits:
                        found[(table, name)] = hits
    finally:
        engine.dispose()
    return found


def refuse_inserts(url: str, tables: tuple[str, ...]) -> None:
    """SQLite triggers that abort every insert into tables: a constraint-style failure whose
    statement carried the secret parameters."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for table in tables:
                conn.execute(
                    text(
                        f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                        "BEGIN SELECT RAISE(ABORT, 'forced failure'); END"
                    )
                )
    finally:
        engine.dispose()


def child_run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real entry point, as cron runs it (environment inherited from the test)."""
    env = {**os.environ, "ALERTS_DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "datamantri_alerts", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def child_output(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout + done.stderr


def test_canaries_never_leave_the_configuration(
    sqlite_url: str,
    flags: Flags,
    sink: Sink,
    smtp_starttls: SMTPServer,
    echoing: dict[str, LoopbackHTTPServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    closed = closed_port()
    slack_url = echoing["slack"].url(f"/services/T0LEAK/B0LEAK/{SLACK_TOKEN}")
    teams_url = echoing["teams"].url(f"/workflows/abc/triggers/manual/paths/invoke?sig={TEAMS_SIG}")
    sink.on("heartbeat", *[(500, {}, f"bad ping {sink.hook('heartbeat')}")] * 50)
    env = {
        **smtp_starttls.environ,
        "SMTP_PASSWORD": SMTP_PASSWORD,  # the server refuses it: 535
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_WHATSAPP_FROM": "+14155238886",
        "TWILIO_API_BASE_URL": f"http://127.0.0.1:{echoing['twilio'].port}",
        "TWILIO_TIMEOUT": "5",
        "SLACK_WEBHOOK_URL": echoing["slack"].url(f"/services/T1/B1/{SLACK_ENV_TOKEN}"),
        "TEAMS_WEBHOOK_URL": echoing["teams"].url(f"/workflows/e/invoke?sig={TEAMS_ENV_SIG}"),
        "ALERTS_HEARTBEAT_URL": f"{sink.url}/ping/{HEARTBEAT_TOKEN}",
        "WAREHOUSE_URL": f"postgresql://monitor:{DB_ENV_PASSWORD}@127.0.0.1:{closed}/wh",
        "STATUS_URL": f"http://127.0.0.1:{closed}/status?token={HTTP_ENV_TOKEN}",
        "ALERTS_RETRY_ATTEMPTS": "2",
        "ALERTS_RETRY_INITIAL_DELAY": "0",
        "ALERTS_HTTP_READ_TIMEOUT": "3",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cli = Cli(sqlite_url)
    outputs: list[tuple[str, str]] = []

    def run(*args: str, ok: tuple[int, ...] = (0, 1)) -> Any:
        result = cli(*args)
        assert result.exception is None, (args, result.exception)
        assert result.exit_code in ok, (args, result.output)
        outputs.append((" ".join(args), result.output))
        return result

    literal_db = f"postgresql://monitor:{DB_PASSWORD}@127.0.0.1:{closed}/warehouse"
    run("datasources", "add", "wh", "--name", "Warehouse", "--url", literal_db, ok=(0,))
    run("datasources", "add", "wh-env", "--name", "Warehouse env", "--url", "${WAREHOUSE_URL}")
    flag_config = ["--config", f"file={flags.path}", "--config", "key=all"]
    every_channel = [
        *("--channel", "slack", "--channel", "teams", "--channel", "email"),
        *("--channel", "whatsapp", "--slack", slack_url, "--teams", teams_url),
        *("--email", "oncall@example.com", "--whatsapp", "+447700900123"),
    ]
    run("create", "--name", "literal", "--type", "flag", *flag_config, *every_channel, ok=(0,))
    env_channels = ["--channel", "slack", "--channel", "teams"]
    run("create", "--name", "from-env", "--type", "flag", *flag_config, *env_channels, ok=(0,))
    http_url = f"http://127.0.0.1:{closed}/{HTTP_PATH}/health?sig={HTTP_QUERY}&api_key=KEY"
    run("datasources", "add", "api", "--name", "API", "--url", http_url, ok=(0,))
    run("datasources", "add", "api-env", "--name", "API env", "--url", "${STATUS_URL}", ok=(0,))
    maria = f"mysql://root:{MARIADB_PASSWORD}@127.0.0.1:3306/test"
    run("datasources", "add", "maria", "--name", "MariaDB", "--url", maria, ok=(0,))
    for ds in ("api", "api-env", "maria"):
        run(
            *("create", "--name", f"{ds}-down", "--type", "datasource_failure"),
            *("--config", f"datasource_id={ds}", "--config", "timeout_seconds=2"),
            *("--channel", "slack", "--slack", slack_url),
            ok=(0,),
        )
    for ds in ("wh", "wh-env"):
        run(
            *("create", "--name", f"{ds}-down", "--type", "datasource_failure"),
            *("--config", f"datasource_id={ds}", "--config", "timeout_seconds=2"),
            *("--channel", "slack", "--slack", slack_url),
            ok=(0,),
        )
        run(
            *("create", "--name", f"{ds}-sql", "--type", "sql"),
            *("--config", f"datasource_id={ds}", "--config", "query=select 1"),
            *("--channel", "teams", "--teams", teams_url),
            ok=(0,),
        )
    flags.set(all="firing")

    run("-vv", "evaluate")
    run("-v", "evaluate", "--all", "--json")
    run("-vv", "evaluate", "--all")
    for ref in ("literal", "from-env", "wh-down", "wh-env-sql"):
        run("-vv", "show", ref, ok=(0,))
        run("show", ref, "--json", ok=(0,))
        run("-vv", "test", ref)
        run("test", ref, "--json")
    run("list", ok=(0,))
    run("list", "--json", ok=(0,))
    run("-vv", "export", ok=(0,))
    run("-vv", "history", ok=(0,))
    episodes = run("history", "--json", ok=(0,)).json()
    assert episodes
    for episode in episodes:
        run("-vv", "history", "show", str(episode["id"]), ok=(0,))
        run("history", "show", str(episode["id"]), "--json", ok=(0,))
    run("-vv", "status")
    run("status", "--json")
    run("-vv", "datasources", "list", ok=(0,))
    run("datasources", "list", "--json", ok=(0,))
    for ds in ("wh", "wh-env", "api", "api-env", "maria"):
        run("-vv", "datasources", "check", ds)
        run("datasources", "check", ds, "--json")
    for ref in ("api-down", "api-env-down", "maria-down"):
        run("-vv", "show", ref, ok=(0,))

    # The store unreachable, its URL holding a password: -v and -vv print the traceback.
    unreachable = Cli(f"postgresql://monitor:{STORE_PASSWORD}@127.0.0.1:{closed}/alerts")
    for verbosity in ("-v", "-vv"):
        for args in (("list",), ("evaluate",), ("history",)):
            result = unreachable(verbosity, *args)
            assert result.exit_code == 1 and "error:" in result.stderr, result.output
            outputs.append((f"{verbosity} {' '.join(args)} (store unreachable)", result.output))
    tracebacks = [out for cmd, out in outputs if "unreachable" in cmd and "Traceback" in out]

    # A store that refuses inserts after the statement (and its parameters) reached it.
    refuse_inserts(sqlite_url, ("datasources", "alerts"))
    forced_db = f"postgresql://monitor:{FORCED_PASSWORD}@db.internal/wh"
    forced_hook = echoing["slack"].url(f"/services/T9/B9/{FORCED_TOKEN}")
    forced = [
        ("datasources", "add", "forced", "--name", "F", "--url", forced_db),
        ("create", "--name", "forced", "--type", "datasource_failure",
         "--config", "datasource_id=wh", "--channel", "slack", "--slack", forced_hook),
    ]  # fmt: skip
    for verbosity in ("-v", "-vv"):
        for args in forced:
            result = run(verbosity, *args, ok=(1,))
            assert "forced failure" in result.stderr and "Traceback" in result.stderr
            tracebacks.append(result.output)
            child = child_run(sqlite_url, verbosity, *args)
            assert child.returncode == 1 and "Traceback" in child.stderr, child.stderr
            outputs.append(
                (f"python -m datamantri_alerts {verbosity} {args[0]}", child_output(child))
            )
            tracebacks.append(child.stderr)

    # The failures really happened (else the scan proves nothing).
    joined = "\n".join(out for _, out in outputs)
    assert echoing["slack"].requests and echoing["teams"].requests and echoing["twilio"].requests
    assert any(r.path.startswith("/ping/") for r in sink.received)
    assert "535" in joined or "authentication" in joined.lower(), "SMTP auth never failed"
    assert "403" in joined and "503" in joined and "401" in joined
    assert "DEBUG" in joined and "INFO" in joined  # -v / -vv logging was on and captured
    slack_paths = " ".join(r.path for r in echoing["slack"].requests)
    teams_paths = " ".join(r.path for r in echoing["teams"].requests)
    assert SLACK_TOKEN in slack_paths and SLACK_ENV_TOKEN in slack_paths
    assert TEAMS_SIG in teams_paths and TEAMS_ENV_SIG in teams_paths
    twilio_auth = echoing["twilio"].requests[0].headers["Authorization"]
    assert base64.b64decode(twilio_auth.split()[1]).decode().endswith(":" + TWILIO_TOKEN)
    assert count(slack_paths + teams_paths)  # the scanner does see a canary where one is
    assert len(tracebacks) >= 8, "the forced failures printed no traceback"
    assert "127.0.0.1:" in joined and "Access denied" in joined  # HTTP and MariaDB sources failed

    leaks = {cmd: count(out) for cmd, out in outputs if count(out)}
    in_store = store_canaries(sqlite_url)
    unexpected = {where: hits for where, hits in in_store.items() if where not in CONFIGURED}
    joined = "\n".join(out for _, out in outputs)
    with capsys.disabled():
        print(
            f"\n[secrets] {len(outputs)} commands ({len(tracebacks)} printed a traceback), "
            f"{len(joined)} characters of output: canaries "
            f"in output {sum(sum(c.values()) for c in leaks.values())}; in store columns other "
            f"than the configured ones {sum(sum(c.values()) for c in unexpected.values())}; "
            f"configured columns holding them: {sorted(in_store)}"
        )
    assert not leaks, json.dumps({k: dict(v) for k, v in leaks.items()}, indent=1)[:3000]
    assert not unexpected, unexpected
    assert Path(sqlite_url.removeprefix("sqlite:///")).exists()
