"""Settings from the environment and `.env`, built inside the CLI callback, never at import."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from datamantri_alerts.inputs import NOTHING_ALLOWED, control_character

#: How long an evaluator holds the alerts and notifications it claimed (ALERTS_LEASE_SECONDS).
DEFAULT_LEASE = timedelta(minutes=10)
#: The shortest lease used (seconds): a shorter ALERTS_LEASE_SECONDS is raised to it, with a
#: warning (earlier releases took any value above 0, and refusing one would stop every cron
#: run of an upgraded host). A run renews its leases every third of it from loops that
#: can be busy for seconds at a time (a claim waiting for the store, a batch of results being
#: written), and a lease that runs out under a live run lets another evaluator check its
#: alerts or send its notifications a second time.
MIN_LEASE_SECONDS = 60
#: The longest (a crashed run on another host holds its rows this long).
MAX_LEASE_SECONDS = 86400
#: A host id is stored as the lease holder `host:pid` (at most 255 characters).
MAX_HOSTNAME = 200


def default_sqlite_path() -> Path:
    """`$XDG_DATA_HOME/datamantri-alerts/alerts.db` (XDG default `~/.local/share`)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "datamantri-alerts" / "alerts.db"


@dataclass(frozen=True)
class Settings:
    database_url: str
    env_file: Path | None
    verbose: int
    hostname: str
    #: Where database_url came from, as a problem with it names it: `--db`,
    #: `ALERTS_DATABASE_URL`, or `store` (the default store).
    database_field: str = "--db"

    @property
    def database_is_default(self) -> bool:
        return "ALERTS_DATABASE_URL" not in os.environ


def load_env_file(env_file: Path | None) -> Path | None:
    """Load `.env` (or the given file) into the environment; real variables win over the file."""
    from dotenv import load_dotenv

    path = env_file if env_file is not None else Path(".env")
    if env_file is None and not path.is_file():
        return None
    if not path.is_file():
        from datamantri_alerts.errors import InputError

        raise InputError(f"file not found: {path}", field="--env-file")
    load_dotenv(path, override=False)
    return path


def lease_setting() -> tuple[timedelta, str | None]:
    """(lease, warning): ALERTS_LEASE_SECONDS, after which a crashed evaluator's leases on
    another host expire (default 600 s), and the warning to show when a value above 0 but
    below `MIN_LEASE_SECONDS` was raised to it (else None). InputError for anything that is
    not a number of seconds above 0 and at most `MAX_LEASE_SECONDS`. Read by the commands that
    hold leases: a bad value stops the evaluator, never `alerts runs wrap`'s job."""
    raw = os.environ.get("ALERTS_LEASE_SECONDS", "").strip()
    if not raw:
        return DEFAULT_LEASE, None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= MAX_LEASE_SECONDS:
        from datamantri_alerts.errors import InputError

        raise InputError(
            f"ALERTS_LEASE_SECONDS must be a number of seconds above 0 and at most "
            f"{MAX_LEASE_SECONDS}, got {raw!r}"
        )
    if seconds < MIN_LEASE_SECONDS:
        return timedelta(seconds=MIN_LEASE_SECONDS), (
            f"ALERTS_LEASE_SECONDS={raw!r} is below {MIN_LEASE_SECONDS}: leases of "
            f"{MIN_LEASE_SECONDS} s are used (a shorter lease runs out under a live run, and "
            "another evaluator would check or send its work again)"
        )
    return timedelta(seconds=seconds), None


def build_settings(
    *,
    db: str | None = None,
    env_file: Path | None = None,
    verbose: int = 0,
    hostname: str | None = None,
) -> Settings:
    loaded = load_env_file(env_file)
    url = db or os.environ.get("ALERTS_DATABASE_URL") or f"sqlite:///{default_sqlite_path()}"
    host = hostname or os.environ.get("ALERTS_HOSTNAME") or socket.gethostname()
    if len(host) > MAX_HOSTNAME or control_character(host, allow=NOTHING_ALLOWED) is not None:
        from datamantri_alerts.errors import InputError

        raise InputError(
            f"the host id must be at most {MAX_HOSTNAME} characters, without control characters",
            field="--hostname" if hostname else "ALERTS_HOSTNAME",
        )
    return Settings(
        database_url=url,
        env_file=loaded,
        verbose=verbose,
        hostname=host,
        database_field=(
            "--db"
            if db
            else "ALERTS_DATABASE_URL"
            if os.environ.get("ALERTS_DATABASE_URL")
            else "store"
        ),
    )
