"""URLs as shown keep their empty authority: `sqlite:////tmp/a.db` must not become
`sqlite://tmp/a.db` (a relative path under a host named `tmp`)."""

from __future__ import annotations

import pytest

from datamantri_alerts.secrets import mask_url, redact_text
from tests.conftest import Cli


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:////var/lib/alerts/alerts.db", "sqlite:////var/lib/alerts/alerts.db"),
        ("sqlite:///relative.db", "sqlite:///relative.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite://", "sqlite://"),
        ("postgresql:///prod?host=/run/postgresql", "postgresql:///prod?host=/run/postgresql"),
        (
            "postgresql://mon:pw-canary@/prod?host=/run/pg",
            "postgresql://mon:***@/prod?host=/run/pg",
        ),
        (
            "postgresql://mon:pw-canary@db.internal:5432/prod",
            "postgresql://mon:***@db.internal:5432/prod",
        ),
        ("mysql+pymysql://root@127.0.0.1:3306/test", "mysql+pymysql://root@127.0.0.1:3306/test"),
        ("mailto:ops@example.com", "mailto:ops@example.com"),
    ],
)
def test_mask_url_keeps_the_authority_marker(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_redacted_error_text_names_the_sqlite_file_as_written() -> None:
    text = redact_text("cannot open sqlite:////srv/alerts/alerts.db: unable to open database file")
    assert text == "cannot open sqlite:////srv/alerts/alerts.db: unable to open database file"


def test_db_upgrade_prints_the_store_url_as_given(cli: Cli, sqlite_url: str) -> None:
    assert sqlite_url.startswith("sqlite:////")
    first = cli("db", "upgrade")
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith(f"{sqlite_url}: ")
    again = cli("db", "upgrade")
    assert again.stdout.startswith(f"{sqlite_url}: already at ")
