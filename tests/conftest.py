"""Shared fixtures: real stores (SQLite files, PostgreSQL), the CLI runner, store dumps.

Tests that need PostgreSQL or MariaDB skip when the server is absent, unless
ALERTS_REQUIRE_SERVICES=1 (set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

#: Fixtures every test directory may use: `connects` (socket connects made) and `fake_dns`.
pytest_plugins = ["tests.net.fixtures"]

PG_ADMIN_URL = os.environ.get(
    "ALERTS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
MARIADB_URL = os.environ.get("ALERTS_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REQUIRE_SERVICES = os.environ.get("ALERTS_REQUIRE_SERVICES") == "1"
REPO_ROOT = Path(__file__).resolve().parent.parent


#: Marks a test over `store_url` (or `any_store`) whose PostgreSQL and MariaDB variants prove
#: nothing a dialect changes (a scenario of state transitions on a scripted clock): CI runs it on
#: SQLite, and the server variants carry `slow` (run them with `-m slow`). A test that is the only
#: proof of a dialect-specific behaviour (locking, JSON, time zones, read-only sessions) must not
#: carry it.
SERVER_DIALECTS_SLOW = pytest.mark.server_dialects_slow
#: The fixtures parametrised over the three stores (tests/evaluator/stores.py has `any_store`).
STORE_PARAMS = ("store_url", "any_store")


#: Marks a test that must not share the machine with other tests: it asserts a wall-clock bound
#: ("cut off within N s", "not delayed"), paces or races processes against each other (overlap,
#: crash-kill), or changes a server-wide setting (MariaDB's global time zone). scripts/test.sh
#: runs these alone in one process after the parallel phase (`--phase serial`).
SERIAL = pytest.mark.serial
#: Fixtures that change a database server for every session on it, not only the test's own
#: database: a test using one is serial (it would change what a parallel test's session sees).
SERVER_WIDE_FIXTURES = frozenset({"mariadb_server_zone"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--phase",
        choices=("all", "parallel", "serial"),
        default="all",
        help="run all tests (default), only those not marked serial (the part scripts/test.sh "
        "runs on several workers), or only those marked serial (run alone afterwards)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "server_dialects_slow: the PostgreSQL and MariaDB variants of this store test are slow",
    )
    config.addinivalue_line(
        "markers",
        "serial: timing-sensitive or server-wide; scripts/test.sh runs it alone, after the "
        "parallel phase",
    )
    _run_as_from_a_terminal()
    _terminal_size_as_in_the_controller(config)


#: Signals a shell ignores in the commands it starts in the background (SIGINT, SIGQUIT) or
#: that `nohup` ignores (SIGHUP). An ignored signal stays ignored in every child, and a shell
#: started with it ignored cannot trap it: a test that forwards it to a job would wait forever.
_LAUNCHER_IGNORED_SIGNALS = ("SIGINT", "SIGQUIT", "SIGHUP")


def _run_as_from_a_terminal() -> None:
    """Signals the launcher ignored get their usual handling back (SIGINT: KeyboardInterrupt),
    so the suite and the processes it starts behave the same however it was launched: from a
    terminal, in the background (`./scripts/test.sh &`), by a CI runner or nohup."""
    import signal

    for name in _LAUNCHER_IGNORED_SIGNALS:
        signum = getattr(signal, name)
        if signal.getsignal(signum) == signal.SIG_IGN:
            signal.signal(
                signum, signal.default_int_handler if name == "SIGINT" else signal.SIG_DFL
            )


#: Set by GNU readline (which pytest imports) in the process environment but not in
#: os.environ, so a pytest process's children inherit COLUMNS=80 and LINES=24 while the
#: process's own os.environ has neither. A pytest-xdist worker is such a child: its os.environ
#: has them, and the CLI, run in-process by the tests, would then fit its output to 80 columns
#: instead of the 160 it uses when piped.
_TERMINAL_SIZE_VARIABLES = ("COLUMNS", "LINES")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """(pytest-xdist, in the controller) Tell each worker which terminal size variables the
    controller's own os.environ has."""
    node.workerinput["alerts_terminal_environ"] = {
        name: os.environ.get(name) for name in _TERMINAL_SIZE_VARIABLES
    }


def _terminal_size_as_in_the_controller(config: pytest.Config) -> None:
    """In a pytest-xdist worker: the variables the controller's os.environ lacks leave this
    os.environ too, and stay in the process environment (os.putenv), as in a plain pytest
    process, so tests see the same on a worker as without pytest-xdist."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return
    for name, value in workerinput.get("alerts_terminal_environ", {}).items():
        if value is None and name in os.environ:
            inherited = os.environ.pop(name)
            os.putenv(name, inherited)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `slow` the server variants of tests marked server_dialects_slow, and `serial` the
    tests using a server-wide fixture; then keep only the tests of the `--phase` asked for.

    Runs before pytest's own `-m` deselection (tryfirst), so `-m 'not slow'` leaves them out.
    """
    for item in items:
        callspec = getattr(item, "callspec", None)
        if (
            item.get_closest_marker("server_dialects_slow") is not None
            and callspec is not None
            and {callspec.params.get(name) for name in STORE_PARAMS} & {"postgres", "mariadb"}
        ):
            item.add_marker(pytest.mark.slow)
        if SERVER_WIDE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(SERIAL)
    phase = config.getoption("--phase")
    if phase != "all":
        keep, other = [], []
        for item in items:
            serial = item.get_closest_marker("serial") is not None
            (keep if serial == (phase == "serial") else other).append(item)
        if other:
            config.hook.pytest_deselected(items=other)
            items[:] = keep


#: The sockets `closed_port` keeps bound, open until the process ends.
_CLOSED_PORT_SOCKETS: list[socket.socket] = []


def closed_port() -> int:
    """A loopback port on which connections are refused at once.

    The port stays bound (never listening) by this process until it ends, so nothing else can
    listen on it meanwhile: a port found free and closed again could be handed to the next
    `bind(("127.0.0.1", 0))` of this test, or of a test on another pytest-xdist worker, and
    then accept the connection the test expects to be refused.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    _CLOSED_PORT_SOCKETS.append(sock)
    return int(sock.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or, under ALERTS_REQUIRE_SERVICES=1, fail) when a server is not listening."""
    if _port_open(host, port):
        return
    message = f"{name} is not listening on {host}:{port}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " and ALERTS_REQUIRE_SERVICES=1")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test sees the developer's settings, .env or default store."""
    for name in list(os.environ):
        ours = name.startswith(("SMTP_", "TWILIO_", "ALERTS_")) or name in (
            "SLACK_WEBHOOK_URL",
            "TEAMS_WEBHOOK_URL",
        )
        if ours and name not in ("ALERTS_REQUIRE_SERVICES", "ALERTS_TEST_PG_URL"):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.chdir(home)


@pytest.fixture(autouse=True)
def _fresh_secret_registry() -> Iterator[None]:
    """Secrets registered by one test (a webhook path, a password) do not mask another's output."""
    from datamantri_alerts.secrets import forget_secrets

    forget_secrets()
    yield
    forget_secrets()


# --------------------------------------------------------------------------- stores


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'alerts.db'}"


@contextmanager
def scratch_pg_database(prefix: str = "alerts_test") -> Iterator[str]:
    """A new, empty PostgreSQL database `<prefix>_<uuid>` as a URL; dropped afterwards."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A scratch PostgreSQL database for this test session, dropped at the end."""
    with scratch_pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def any_dialect_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL on each dialect in turn: a new SQLite file, a fresh PostgreSQL schema, the
    MariaDB test database (skipped when MariaDB is down, unless services are required)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    elif request.param == "postgres":
        yield request.getfixturevalue("pg_url")
    else:
        require_service("MariaDB", "127.0.0.1", 3306)
        yield MARIADB_URL


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """A fresh schema in the session's database, as a store URL (search_path set)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{pg_database}?options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@contextmanager
def scratch_mariadb_database(
    prefix: str = "alerts_test", server_url: str = MARIADB_URL
) -> Iterator[str]:
    """A new, empty MariaDB database `<prefix>_<uuid>` as a URL; dropped afterwards."""
    require_service("MariaDB", "127.0.0.1", 3306)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        # The server defaults (utf8mb4_general_ci here): the store sets its own per table.
        conn.execute(text(f"CREATE DATABASE `{name}`"))
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh MariaDB database per test (parallel-safe), as a store URL."""
    with scratch_mariadb_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs the test on a SQLite file, on PostgreSQL and on MariaDB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'alerts.db'}"
    if request.param == "mariadb":
        return request.getfixturevalue("mariadb_url")
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store file migrated to head once per session, for `store` fixtures to copy.

    Migrating a new SQLite store costs about 70 ms (Alembic, table rebuilds); a copy of this
    file costs well under 1 ms. Only fixtures that hand a test an already-migrated store use it:
    first use, upgrades and concurrent first runs are tested on new files (tests/test_store.py,
    tests/reliability/test_first_run.py, test_upgrade.py, and every test that starts from `cli`).
    """
    from datamantri_alerts.store.engine import open_store

    path = tmp_path_factory.mktemp("template") / "alerts.db"
    open_store(f"sqlite:///{path}").dispose()
    with closing(sqlite3.connect(path)) as conn:  # the WAL folded in: the file is the whole store
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert not path.with_name(path.name + "-wal").exists()
    return path


def migrated_sqlite_copy(template: Path, url: str) -> None:
    """Copy the migrated template to the file of a `sqlite:///` url (mode 0600 kept).

    Does nothing for another dialect or when the file exists. Raises OSError when the file's
    folder is missing.
    """
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            shutil.copy2(template, path)


@dataclass(frozen=True)
class MariaDBTemplate:
    """A MariaDB store migrated to head once per session: its database and its tables' DDL."""

    database: str
    #: (table, `SHOW CREATE TABLE` text, whether the table holds rows) for every table.
    tables: tuple[tuple[str, str, bool], ...]


@pytest.fixture(scope="session")
def migrated_mariadb_template() -> Iterator[MariaDBTemplate]:
    """A MariaDB store migrated to head once per session, for `store` fixtures to copy.

    Migrating a new MariaDB store costs about 0.3 s (Alembic's ALTERs rebuild tables); creating
    its tables from this template's `SHOW CREATE TABLE` text (the server's own, exact rendering
    of each table: columns, charset and collation, indexes, foreign keys) costs a fraction of
    that. As with the SQLite template, only fixtures handing a test an already-migrated store use
    it: first use and upgrades on MariaDB are tested on new databases.
    """
    from datamantri_alerts.store.engine import open_store

    with scratch_mariadb_database("alerts_template") as url:
        open_store(url).dispose()
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                tables = tuple(
                    (
                        name,
                        conn.execute(text(f"SHOW CREATE TABLE `{name}`")).one()[1],
                        conn.execute(text(f"SELECT 1 FROM `{name}` LIMIT 1")).first() is not None,
                    )
                    for name in sorted(inspect(conn).get_table_names())
                )
        finally:
            engine.dispose()
        yield MariaDBTemplate(url.rsplit("/", 1)[1], tables)


def migrated_mariadb_copy(template: MariaDBTemplate, url: str) -> None:
    """Create the template's tables (and copy its rows) in the empty database of a MySQL url.

    Does nothing when the database already has tables.
    """
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if inspect(conn).get_table_names():
                return
            # Tables are created in name order, so a foreign key may name a table made later.
            conn.execute(text("SET SESSION foreign_key_checks = 0"))
            for name, ddl, has_rows in template.tables:
                conn.execute(text(ddl))
                if has_rows:
                    conn.execute(
                        text(f"INSERT INTO `{name}` SELECT * FROM `{template.database}`.`{name}`")
                    )
            conn.execute(text("SET SESSION foreign_key_checks = 1"))
    finally:
        engine.dispose()


def copy_migrated_template(request: pytest.FixtureRequest, url: str) -> None:
    """Give a new store at url the schema of the session's migrated template for its dialect.

    SQLite: a copy of the template file; MariaDB: the template's tables. PostgreSQL stores are
    migrated by `open_store` (a schema migrates in about 0.15 s, as fast as a copy would be).
    """
    if url.startswith("sqlite:///"):
        migrated_sqlite_copy(request.getfixturevalue("migrated_sqlite_template"), url)
    elif url.startswith("mysql"):
        migrated_mariadb_copy(request.getfixturevalue("migrated_mariadb_template"), url)


@pytest.fixture
def store(store_url: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """An opened, migrated store on each dialect (SQLite and MariaDB: copies of the session's
    templates)."""
    from datamantri_alerts.store.engine import open_store

    copy_migrated_template(request, store_url)
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.dispose()


@pytest.fixture
def sqlite_store(sqlite_url: str, migrated_sqlite_template: Path) -> Iterator[Any]:
    """An opened, migrated SQLite store (a copy of the session's template)."""
    from datamantri_alerts.store.engine import open_store

    migrated_sqlite_copy(migrated_sqlite_template, sqlite_url)
    opened = open_store(sqlite_url)
    try:
        yield opened
    finally:
        opened.dispose()


def dump_store(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, canonical, for before/after comparisons."""
    from datamantri_alerts.store.engine import normalize_url

    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            tables = sorted(inspect(conn).get_table_names())
            dump: dict[str, list[dict[str, Any]]] = {}
            quote = engine.dialect.identifier_preparer.quote
            for table in tables:
                rows = conn.execute(text(f"SELECT * FROM {quote(table)}")).mappings().all()
                dump[table] = sorted(
                    (json.loads(json.dumps(dict(r), default=str)) for r in rows),
                    key=lambda r: json.dumps(r, sort_keys=True),
                )
            return dump
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- CLI


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


class Cli:
    """Runs `alerts` in-process against one store, as a user would type it."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url

    def __call__(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> CliResult:
        from typer.testing import CliRunner

        from datamantri_alerts.cli import app

        runner = CliRunner()
        result = runner.invoke(
            app, ["--db", self.db_url, *args], input=input, env=env, catch_exceptions=True
        )
        exception = result.exception if not isinstance(result.exception, SystemExit) else None
        return CliResult(result.exit_code, result.stdout, result.stderr, exception)


@pytest.fixture
def cli(sqlite_url: str) -> Cli:
    return Cli(sqlite_url)


@pytest.fixture
def store_cli(store_url: str) -> Cli:
    """The CLI on each dialect in turn (SQLite file, PostgreSQL)."""
    return Cli(store_url)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)
