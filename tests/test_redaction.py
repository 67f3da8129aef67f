"""The one redactor (`secrets.redact_known` / `redact_text`, the registry, `logs`): each rule on
real exception text, the output streams, the log filter, and the redacted store columns."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from datamantri_alerts.logs import (
    RedactingFilter,
    RedactingStream,
    redacted_output,
    write_unredacted,
)
from datamantri_alerts.secrets import (
    MASK,
    forget_secrets,
    known_redactor,
    known_secrets,
    redact_known,
    redact_text,
    redact_value,
    register_configured,
    register_secret,
    register_url,
    url_secrets,
)
from tests.conftest import REPO_ROOT

ISSUE_URL = "http://127.0.0.1:1/health?sig=SIG&api_key=KEY"


def requests_error(url: str) -> str:
    """The text requests really raises for a refused connection to url."""
    with pytest.raises(requests.RequestException) as caught:
        requests.get(url, timeout=(2, 2))
    return f"{type(caught.value).__name__}: {caught.value}"


def forced_insert_error(secret_values: tuple[str, str], tmp_path: Path) -> str:
    """A real SQLAlchemy error text, from an engine WITHOUT hide_parameters, whose
    `[parameters: ...]` quotes both values."""
    engine = create_engine(f"sqlite:///{tmp_path / 'raw.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (a TEXT, b TEXT)"))
            conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON t "
                    "BEGIN SELECT RAISE(ABORT, 'forced failure'); END"
                )
            )
        with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
            conn.execute(
                text("INSERT INTO t (a, b) VALUES (:a, :b)"),
                {"a": secret_values[0], "b": secret_values[1]},
            )
    finally:
        engine.dispose()
    return str(caught.value)


# --------------------------------------------------------------------------- rules


def test_issue_example_requests_text_loses_path_and_query() -> None:
    raw = requests_error(ISSUE_URL)
    assert "/health?sig=SIG&api_key=KEY" in raw  # what used to leak
    # The pattern rule alone (nothing registered) already hides urllib3's "with url: PATH".
    assert "sig=SIG" not in redact_text(raw) and "api_key" not in redact_text(raw)
    assert "sig=SIG" not in redact_known(raw)
    assert "127.0.0.1" in redact_text(raw) and "refused" in redact_text(raw).lower()


def test_registered_http_source_is_hidden_however_it_is_quoted() -> None:
    register_url(ISSUE_URL)
    assert {"/health?sig=SIG&api_key=KEY", "sig=SIG&api_key=KEY"} <= known_secrets()
    for shown in (
        f"GET {ISSUE_URL}",
        "path /health?sig=SIG&api_key=KEY in a message",
        json.dumps({"url": "/health?sig=SIG&api_key=KEY"}),
        "quoted sig%3DSIG%26api_key%3DKEY",
    ):
        cleaned = redact_known(shown)
        assert "sig=SIG" not in cleaned and "sig%3DSIG" not in cleaned, cleaned
        assert MASK in cleaned


def test_sqlalchemy_parameters_are_hidden_by_the_text_rule(tmp_path: Path) -> None:
    webhook = "https://hooks.example.com/services/T0/B0/paramTOKEN123456"
    database = "postgresql://monitor:paramPASS987@db.internal/wh"
    raw = forced_insert_error((webhook, database), tmp_path)
    assert "paramTOKEN123456" in raw and "paramPASS987" in raw  # SQLAlchemy does quote them
    for cleaned in (redact_known(raw), redact_text(raw)):
        assert "paramTOKEN123456" not in cleaned and "paramPASS987" not in cleaned
        assert "[parameters: ***]" in cleaned
        assert "forced failure" in cleaned  # the reason stays readable


def test_sql_literals_and_constraint_values_are_masked() -> None:
    raw = (
        "(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint\n"
        "DETAIL:  Key (url)=(postgresql://u:litPASS@h/db) already exists.\n"
        "[SQL: UPDATE datasources SET url='https://h/litTOKEN' WHERE id = %(id)s]\n"
        "[parameters: {'id': 'wh'}]\n"
        "(Background on this error at: https://sqlalche.me/e/20/gkpj)\n"
        "(1062, \"Duplicate entry 'mysqlSECRET' for key 'uq_alerts_name'\")"
    )
    cleaned = redact_known(raw)
    for value in ("litPASS", "litTOKEN", "mysqlSECRET", "'wh'"):
        assert value not in cleaned, value
    assert "Key (url)=(***) already exists" in cleaned
    assert "UPDATE datasources SET url='***'" in cleaned


def test_indented_json_output_stays_valid_json() -> None:
    """stdout is redacted line by line; `--json` output (indented) must still parse."""
    register_secret('jsonSECRET"quoted')
    data = {
        "summary": "x [parameters: ('p', \"q]\")] then with url: /h?x=1",
        "cut": "truncated [parameters: (1, 2",
        "url": 'http://u:pw12@h/x"',
        "list": ["k [parameters: (1,)]", 'has jsonSECRET"quoted inside'],
    }
    cleaned = redact_known(json.dumps(data, indent=2, ensure_ascii=False))
    parsed = json.loads(cleaned)
    assert parsed["summary"] == "x [parameters: ***] then with url: /***"
    assert parsed["cut"] == "truncated [parameters: ***"
    assert parsed["url"] == 'http://u:***@h/x"'
    assert parsed["list"] == ["k [parameters: ***]", "has *** inside"]


def test_userinfo_passwords_masked_but_env_references_kept() -> None:
    cleaned = redact_known("to mysql://root:userPASS@h/db and postgresql://u:${PW}@h/db")
    assert "userPASS" not in cleaned and "mysql://root:***@h/db" in cleaned
    assert "postgresql://u:${PW}@h/db" in cleaned


def test_content_urls_survive_known_redaction_but_not_error_redaction() -> None:
    runbook = "see https://wiki.example.com/runbooks/etl-failure"
    assert redact_known(runbook) == runbook  # stdout and notification content keep links
    assert redact_text(runbook) == "see https://wiki.example.com/***"


def test_env_reference_values_and_database_passwords_are_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WH_URL", "postgresql://monitor:envPASS%40x@db/wh")
    register_configured({"url": "${WH_URL}", "email": ["ops@example.com"], "n": 3})
    assert {"envPASS%40x", "envPASS@x"} <= known_secrets()
    cleaned = redact_known("password envPASS@x, mail ops@example.com")
    assert cleaned == "password ***, mail ops@example.com"  # addresses are not secrets


def test_short_values_and_plain_words_are_not_registered() -> None:
    register_secret("abc")
    register_url("mailto:someone")
    register_url("https://example.com/")
    assert known_secrets() == frozenset()
    assert url_secrets("sqlite:///tmp/x.db") == []


def test_environment_secrets_are_known_without_registration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/envSLACKtok1")
    monkeypatch.setenv("ALERTS_DATABASE_URL", "postgresql://u:storePASS1@h/db")
    monkeypatch.setenv("ALERTS_SECRET_KEY", "newKEYnewKEY,oldKEYoldKEY")
    cleaned = redact_known("envSLACKtok1 storePASS1 oldKEYoldKEY sqlite stays")
    assert cleaned == "*** *** *** sqlite stays"


def test_a_json_value_is_redacted_like_each_of_its_strings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The store's JSON columns redact a whole value with one snapshot of the known secrets
    (`known_redactor`); every string in it comes out as `redact_known` alone would make it."""
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/envSLACKtok2")
    register_secret("regSECRETvalue9")
    sql_error = forced_insert_error(("paramSECRET77", "other"), tmp_path)
    value = {
        "summary": "hook envSLACKtok2 failed",
        "rows": [{"v": "regSECRETvalue9"}, {"v": "plain text"}, 3, None],
        "error": sql_error,
        "nested": {"url": "postgresql://u:pw12345678@h/db", "n": 1.5},
    }
    expected = redact_value(value, redact_known)
    assert redact_value(value, known_redactor()) == expected
    assert expected["summary"] == f"hook {MASK} failed"
    assert expected["rows"][0] == {"v": MASK}
    assert "paramSECRET77" not in json.dumps(expected)
    assert "pw12345678" not in json.dumps(expected)
    # Secrets passed in are masked too, as with redact_known(text, secrets).
    assert known_redactor(["onlyHEREsecret1"])("x onlyHEREsecret1 y") == f"x {MASK} y"


def test_the_redacted_json_column_binds_what_the_full_walk_makes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`RedactedJSON` skips the walk over a value only when nothing in it can change (no known
    secret, no literal a structural rule needs, no NUL or lone surrogate): for every value,
    with and without known secrets, it binds what redacting and making storable each string
    makes."""
    from sqlalchemy.dialects import sqlite

    from datamantri_alerts.store.types import RedactedJSON, storable

    sql_error = forced_insert_error(("paramSECRET77", "other"), tmp_path)
    values: list[object] = [
        {"table": "t_00001", "age_seconds": 12.5, "status": "pass", "filter": None},
        {"url": "postgresql://u:pw12345678@h/db"},
        {"error": sql_error},
        {"e": "Max retries exceeded with url: /hook/tok?x=1 (Caused by x)"},
        {"e": "DETAIL:  Key (email)=(someone@example.com) already exists."},
        {"e": "Duplicate entry 'someone@example.com' for key 'email'"},
        {"e": "[SQL: SELECT 'literal' FROM t]"},
        {"[SQL: key": "value", "://": ["a", ("b", "c")]},
        {"nul": "core\x00dump", "bad": b"\xff".decode("utf-8", "surrogateescape")},
        ["emoji \U0001f600", "ünïcode", 1, True, None, 2.5],
        {"deep": [{"deeper": {"v": "regSECRETvalue9 and envSLACKtok2"}}]},
        "a string alone",
    ]
    column = RedactedJSON()
    dialect = sqlite.dialect()

    def full_walk(value: object) -> object:
        return storable(redact_value(value, known_redactor()))

    def bound(value: object) -> str:
        return json.dumps(column.process_bind_param(value, dialect))

    for value in values:  # nothing known: the structural rules and storable alone
        assert bound(value) == json.dumps(full_walk(value)), value
    assert "pw12345678" not in bound(values[1])
    assert "paramSECRET77" not in bound(values[2])
    assert "someone@example.com" not in bound(values[4]) + bound(values[5])

    register_secret("regSECRETvalue9")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/envSLACKtok2")
    for value in values:
        assert bound(value) == json.dumps(full_walk(value)), value
    assert bound(values[10]) == json.dumps({"deep": [{"deeper": {"v": f"{MASK} and {MASK}"}}]})


def test_environment_read_once_keeps_registered_secrets_live(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside `environment_read_once` the environment's secrets are those read on entering it;
    a secret registered meanwhile is masked at once, and outside it the environment is read
    at each redaction again."""
    from datamantri_alerts.secrets import environment_read_once

    monkeypatch.setenv("SMTP_PASSWORD", "envPASSWORD123")
    with environment_read_once():
        assert redact_known("pw envPASSWORD123") == f"pw {MASK}"
        register_secret("registeredINSIDE42")
        assert redact_known("x registeredINSIDE42") == f"x {MASK}"
        assert known_redactor()("y registeredINSIDE42") == f"y {MASK}"
        monkeypatch.setenv("SMTP_PASSWORD", "changedPASSWORD456")
        assert redact_known("changedPASSWORD456") == "changedPASSWORD456"  # read on entering
    assert redact_known("changedPASSWORD456") == MASK


def test_environment_read_once_follows_the_registry_forgotten_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The known index kept for `environment_read_once` is the registry's of that moment: a
    registry emptied meanwhile (`forget_secrets`) is the one read from then on, and what is
    registered after that is masked at once, by every check (`redaction_possible` too)."""
    from datamantri_alerts.secrets import (
        SECRET_ENV_NAMES,
        environment_read_once,
        redaction_possible,
    )

    for name in (*SECRET_ENV_NAMES, "ALERTS_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)  # no secret but the registry's
    forget_secrets()
    register_secret("firstSECRETvalue1")
    with environment_read_once():
        assert redact_known("a firstSECRETvalue1") == f"a {MASK}"
        assert redaction_possible('"plain"')
        forget_secrets()
        assert redact_known("a firstSECRETvalue1") == "a firstSECRETvalue1"
        assert not redaction_possible('"plain"')
        register_secret("secondSECRETvalue2")
        assert redact_known("b secondSECRETvalue2") == f"b {MASK}"
        assert redaction_possible('"plain"')
    forget_secrets()


# --------------------------------------------------------------------------- output streams


class Collect:
    """A text stream target that records what reached it."""

    def __init__(self) -> None:
        self.text = ""
        self.flushes = 0
        self.encoding = "utf-8"
        self.errors = "strict"

    def write(self, value: str) -> int:
        self.text += value
        return len(value)

    def flush(self) -> None:
        self.flushes += 1

    def isatty(self) -> bool:
        return False


def test_stream_redacts_a_secret_split_over_writes() -> None:
    register_secret("splitSECRET42")
    target = Collect()
    stream = RedactingStream(target, redact_known)  # type: ignore[arg-type]
    stream.write("one split")
    stream.write("SECRET42 two\nthree ")
    assert target.text == "one *** two\n"  # the partial line waits for its end
    stream.write("splitSECR")
    stream.flush()  # a prompt or exit passes the partial line on
    assert target.text == "one *** two\nthree splitSECR"
    with pytest.raises(TypeError):
        stream.write(b"bytes")  # type: ignore[arg-type]
    assert not hasattr(stream, "buffer")  # click cannot go around it with bytes


def test_stream_takes_a_write_made_while_it_redacts() -> None:
    """Redacting can write to the same stream on the same thread (the redactor's first import
    under `python -v`, a warning): that write follows the text being redacted, redacted too,
    instead of waiting for the stream's own lock for ever."""
    register_secret("innerSECRET9")
    target = Collect()

    def redact_and_speak(text: str) -> str:
        if "outer" in text:
            stream.write("inner innerSECRET9\n")  # the nested write
            stream.flush()
        return redact_known(text)

    stream = RedactingStream(target, redact_and_speak)  # type: ignore[arg-type]
    stream.write("outer innerSECRET9\n")
    assert target.text == "outer ***\ninner ***\n"
    stream.write("tail")
    stream.flush()
    assert target.text.endswith("inner ***\ntail")


@pytest.mark.parametrize("command", [["--version"], ["list"]])
def test_python_verbose_imports_do_not_hang_a_command(tmp_path: Path, command: list[str]) -> None:
    """`python -v` (PYTHONVERBOSE) prints a line per import to stderr, the first ones from
    inside the redactor's own import: every command still runs to its end."""
    done = subprocess.run(
        [
            sys.executable,
            "-v",
            "-m",
            "datamantri_alerts",
            "--db",
            f"sqlite:///{tmp_path}/s.db",
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "import 'datamantri_alerts.secrets'" in done.stderr


def test_redacted_output_covers_click_print_and_restores(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import typer

    register_secret("printedSECRET7")
    with redacted_output():
        print("print printedSECRET7")
        typer.echo("echo printedSECRET7")
        typer.echo("err https://h.example.com/secret/path printedSECRET7", err=True)
        write_unredacted("asked-for printedSECRET7\n")
    out, err = capsys.readouterr()
    assert out == "print ***\necho ***\nasked-for printedSECRET7\n"
    assert err == "err https://h.example.com/*** ***\n"
    assert not isinstance(sys.stdout, RedactingStream)


def test_python_traceback_printing_is_redacted_in_a_child(tmp_path: Path) -> None:
    """An uncaught exception after `main()` installed the redactor: Python's own printing."""
    script = textwrap.dedent(
        """
        from datamantri_alerts.logs import install_redacted_output
        from datamantri_alerts.secrets import register_url
        install_redacted_output()
        register_url("postgresql://u:childPASS55@h/db")
        raise RuntimeError("cannot open postgresql://u:childPASS55@h/db (childPASS55)")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "RuntimeError" in done.stderr
    assert "childPASS55" not in done.stderr, done.stderr


# --------------------------------------------------------------------------- logging


def test_log_records_with_tracebacks_are_redacted() -> None:
    register_secret("loggedSECRET9")
    record_logger = logging.getLogger("tests.redaction")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(message)s"))
    record_logger.addHandler(handler)
    try:
        try:
            raise ValueError("inner loggedSECRET9 https://hooks.example.com/x/loggedTOKEN")
        except ValueError:
            record_logger.exception("failed with %s", "loggedSECRET9", stack_info=True)
    finally:
        record_logger.removeHandler(handler)
    written = stream.getvalue()
    assert "ValueError" in written and "Traceback" in written and "Stack (most recent" in written
    assert "loggedSECRET9" not in written and "loggedTOKEN" not in written


# --------------------------------------------------------------------------- store columns


def test_history_and_outbox_columns_are_redacted_on_write(sqlite_url: str) -> None:
    from datamantri_alerts.store.engine import open_store
    from datamantri_alerts.store.models import AlertHistory, EvaluatorRun

    register_url("https://api.example.com/status?token=columnTOKEN77")
    store = open_store(sqlite_url)
    try:
        with store.transaction() as session:
            session.add(
                AlertHistory(
                    alert_name="a",
                    triggered_at=datetime.now(UTC),
                    severity="critical",
                    summary="failed: with url: /status?token=columnTOKEN77",
                    details={"error": ["columnTOKEN77"], "runbook": "https://wiki.example.com/r"},
                    notifications_sent=[],
                    notification_errors=["columnTOKEN77"],
                )
            )
            session.add(
                EvaluatorRun(
                    host="h", pid=1, started_at=datetime.now(UTC), message="x columnTOKEN77"
                )
            )
        with store.engine.connect() as conn:
            raw = " ".join(
                str(row)
                for table in ("alert_history", "evaluator_runs")
                for row in conn.execute(text(f"SELECT * FROM {table}"))
            )
    finally:
        store.dispose()
    assert "columnTOKEN77" not in raw
    assert "https://wiki.example.com/r" in raw  # content links kept
    assert raw.count(MASK) >= 4


@pytest.mark.serial  # wall-clock bound: linear time
def test_redacting_a_long_word_takes_linear_time() -> None:
    """URL rules are bounded: a scheme pattern tried from every letter of a 2 MB word was
    quadratic (minutes). The bound here is generous; the quadratic run would take hours."""
    import time

    from datamantri_alerts.secrets import redact_known, redact_text

    word = "x" * 2_000_000
    started = time.monotonic()
    assert redact_text(word) == word
    assert (
        redact_known(word + " postgresql://u:pw-canary@h/db") == word + " postgresql://u:***@h/db"
    )
    assert time.monotonic() - started < 60
    # A scheme longer than the bound still has its URL masked.
    long_scheme = "a" * 40 + "+psycopg://monitor:pw-canary@db/prod"
    assert "pw-canary" not in redact_text(long_scheme)
    # An unquoted @ in a password is masked up to the last @ before the host.
    assert redact_text("postgresql://u:p@ss:pw-canary@db/prod") == "postgresql://u:***@db/prod"


def test_secrets_registered_one_by_one_are_all_masked_longest_first() -> None:
    """The registry's index grows as secrets are registered (a delivery registers each
    webhook it sends to), and masks together with the caller's and the environment's secrets,
    the longest match winning wherever they overlap."""
    forget_secrets()
    hooks = [f"https://hooks.slack.com/services/T0001/B{n:05d}/tok{n:020d}" for n in range(300)]
    for hook in hooks[:150]:
        register_url(hook)
        assert hook not in redact_known(f"posting to {hook}")  # the index is in use meanwhile
    for hook in hooks[150:]:
        register_url(hook)
    text = " ".join(hooks)
    masked = redact_known(text)
    assert "tok" not in masked and "B00" not in masked, masked[:200]
    # A caller's secret that is a part of a registered one does not cut the longer one short.
    extra = "tok00000000000000000007"
    assert redact_known(hooks[7], [extra]) == "***"
    assert redact_known(f"x {extra} y", [extra]) == "x *** y"
    forget_secrets()
    assert redact_known(hooks[7]) == hooks[7]
