"""Encryption at rest with ALERTS_SECRET_KEY: no canary in the raw SQLite bytes; key rotation."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet

from tests.conftest import Cli

SLACK = "https://hooks.slack.com/services/T0/B0/slackcanary0123456789"
DB_URL = "postgresql://monitor:dbcanary0123456789@db.internal/prod"
CANARIES = (b"slackcanary0123456789", b"dbcanary0123456789")


def _raw_bytes(sqlite_url: str) -> bytes:
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    data = b""
    for suffix in ("", "-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            data += side.read_bytes()
    return data


def _seed(cli: Cli, env: dict[str, str]) -> None:
    assert cli("datasources", "add", "w", "--name", "W", "--url", DB_URL, env=env).exit_code == 0
    result = cli(
        "create",
        "--name",
        "Enc",
        "--type",
        "sql",
        "--config",
        "datasource_id=w",
        "--config",
        "query=select 1",
        "--channel",
        "slack",
        "--slack",
        SLACK,
        env=env,
    )
    assert result.exit_code == 0, result.output


def test_no_canary_in_raw_store_with_key(cli: Cli, sqlite_url: str) -> None:
    env = {"ALERTS_SECRET_KEY": Fernet.generate_key().decode()}
    _seed(cli, env)
    raw = _raw_bytes(sqlite_url)
    assert b"enc:v1:" in raw
    for canary in CANARIES:
        assert raw.count(canary) == 0
    exported = cli("export", "--show-secrets", env=env)
    assert SLACK in exported.stdout and DB_URL in exported.stdout
    locked = cli("export", "--show-secrets")
    assert locked.exit_code == 1
    assert "ALERTS_SECRET_KEY" in locked.stderr and "Traceback" not in locked.output


def test_without_key_secrets_are_plain_then_rotate_encrypts(cli: Cli, sqlite_url: str) -> None:
    _seed(cli, {})
    assert all(c in _raw_bytes(sqlite_url) for c in CANARIES)
    key = Fernet.generate_key().decode()
    rotated = cli("secrets", "rotate", env={"ALERTS_SECRET_KEY": key})
    assert rotated.exit_code == 0, rotated.output
    assert "2 were plain" in rotated.stdout
    # rotate rewrites the SQLite file, so the old plain pages are gone too
    assert all(c not in _raw_bytes(sqlite_url) for c in CANARIES)


def test_key_rotation(cli: Cli) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    _seed(cli, {"ALERTS_SECRET_KEY": old})
    result = cli("secrets", "rotate", env={"ALERTS_SECRET_KEY": f"{new},{old}"})
    assert result.exit_code == 0 and "2 were encrypted" in result.stdout
    assert SLACK in cli("export", "--show-secrets", env={"ALERTS_SECRET_KEY": new}).stdout
    stale = cli("export", "--show-secrets", env={"ALERTS_SECRET_KEY": old})
    assert stale.exit_code == 1 and "cannot be decrypted" in stale.stderr
    bad = cli("export", env={"ALERTS_SECRET_KEY": "not-a-key"})
    assert bad.exit_code == 1 and "not a valid Fernet key" in bad.stderr
    assert len(cli("secrets", "generate-key").stdout.strip()) == 44
